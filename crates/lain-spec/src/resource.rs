//! Resource instances: a resource's lain.yaml rendered for one client.
//!
//! A resource app (`apptype: resource`) ships a lain.yaml that is a Jinja2
//! template. An app that lists it under `use_resources` gets its own copy,
//! rendered with the parameters it gave there and run as a separate app
//! named `resource.{resource}.{client}` ([`instance_name`]). [`instantiate`]
//! does that rendering and validates the result.
//!
//! What an instance is, and why:
//! - **Rendering is per value**, as lain-sdk's `render_resource_instance_meta`
//!   does: the template is loaded as YAML first, then every string value
//!   holding `{{`, `{%` or `{#` is rendered on its own; keys and other
//!   values are kept as written. So a diagnostic points at the template's
//!   own line, and a parameter can only change a value, never add keys or
//!   sections to the instance (a client's `memory: "64m\nprivileged: ..."`
//!   stays one odd memory value). A value must therefore be valid YAML
//!   before rendering: `memory: "{{ memory }}"` is quoted, as LAIN required.
//! - **Rendered values are typed like LAIN's**: a result that reads as an
//!   integer (`3`, ` -2 `) becomes an integer, so
//!   `num_instances: "{{ n|default(3)|int }}"` works; `true`/`True` and
//!   `false`/`False` (how minijinja and Jinja2 print booleans) become
//!   booleans. Anything else stays a string.
//! - **Jinja2 semantics where templates rely on them**: an undefined name
//!   renders as empty, so `default` works; `int` returns its default when a
//!   value does not convert, as Jinja2's does.
//! - **Templates are untrusted** (any maintainer of a resource writes one,
//!   every client renders it), so the language is cut down to what
//!   expressions need, and every path that could grow memory or time
//!   without bound is shut: no statements (`{% ... %}`: no loops, `set`,
//!   macros, includes), no `*`/`**` (string and list repetition) and no
//!   `~`/`+` (concatenation: write `{{ a }}-{{ b }}` instead); only the
//!   filters in [`TEMPLATE_FILTERS`] and tests in [`TEMPLATE_TESTS`], no
//!   global functions, no loader (nothing is read from disk). With those
//!   gone no value outgrows its inputs by more than a small factor. On
//!   top: [`MAX_RENDER_FUEL`] instructions and [`MAX_RENDERED_BYTES`] of
//!   output for the whole file, [`RENDER_RECURSION_LIMIT`] levels of
//!   nesting, [`MAX_EXPRESSION_TOKENS`] tokens an expression (minijinja's
//!   parser would otherwise overflow the stack on long chains),
//!   [`MAX_TEMPLATED_VALUE_BYTES`] a templated value and [`MAX_PARAM_BYTES`]
//!   a parameter; a panic inside minijinja becomes an error on that value.
//! - **The instance is an ordinary app** (`apptype: app`) whose appname is
//!   the instance name. The template must name the resource
//!   (`appname: {resource}`) and say `apptype: resource`.
//! - **Default domains** derive from the instance name the way LAIN did,
//!   by reversing its dot-separated parts: proc `web` of
//!   `resource.redis.hello` answers on `hello.redis.resource.{domain}` and
//!   `hello.redis.resource.lain`. Every instance gets its own domains, under
//!   a `resource` subdomain no plain app can take (plain appnames have no
//!   dots). Names too long for DNS are rejected.
//! - **Portals serve only their client**: every portal's `allow_clients`
//!   becomes the client's appname, whatever the template said (`**` in all
//!   real resources). Another app that wants the resource gets its own
//!   instance.
//! - **Images**: an instance runs the resource's release images;
//!   [`crate::release_image`] maps an instance name to the resource's
//!   repository, as LAIN's console did.

use crate::diag::{Pos, Sink};
use crate::model::{LainConf, ResourceParam};
use crate::validate::{self, is_core_name, Instance, NAME_RULE, RESERVED_APPNAMES};
use crate::yaml::{self, short, Node, Value as Yaml};
use crate::{Diagnostics, ParseOptions, Validated};
use minijinja::machinery::{tokenize, Token};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use std::collections::{BTreeMap, HashSet};
use std::panic::AssertUnwindSafe;

/// The first part of every instance name.
pub const INSTANCE_PREFIX: &str = "resource";

/// Instructions the template engine may run for one whole file. A real
/// resource template uses a few dozen.
pub const MAX_RENDER_FUEL: u64 = 100_000;

/// Bytes all rendered values of one file may add up to (as much as a
/// lain.yaml may hold).
pub const MAX_RENDERED_BYTES: usize = crate::MAX_FILE_BYTES;

/// Longest string parameter a client may pass, in bytes. Real ones are a
/// size or a count; the cap bounds what one expression can copy.
pub const MAX_PARAM_BYTES: usize = 4096;

/// Longest string value that holds template syntax, in bytes. Real ones
/// are a line; minijinja counts columns in 16 bits.
pub const MAX_TEMPLATED_VALUE_BYTES: usize = 16 * 1024;

/// Most tokens in one `{{ ... }}`. Real ones have about a dozen; the cap
/// bounds how deep an expression can nest, because minijinja's parser and
/// compiler recurse without a limit on chains such as `not not not ...`,
/// `-(-(-...))`, `a if b else c if ...` or `x|d|d|d...`, and would
/// overflow the stack.
pub const MAX_EXPRESSION_TOKENS: usize = 100;

/// Nesting depth of the template engine.
pub const RENDER_RECURSION_LIMIT: usize = 64;

/// The filters a resource template may use (Jinja2's names and meaning).
pub const TEMPLATE_FILTERS: &[&str] = &[
    "abs",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "float",
    "int",
    "length",
    "lower",
    "round",
    "string",
    "title",
    "trim",
    "upper",
];

/// The tests (`x is defined`) a resource template may use.
pub const TEMPLATE_TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "eq",
    "even",
    "false",
    "float",
    "ge",
    "gt",
    "in",
    "integer",
    "le",
    "lt",
    "ne",
    "none",
    "number",
    "odd",
    "string",
    "true",
    "undefined",
];

/// A name an app can be registered under: LAIN's appname pattern
/// ([`is_core_name`]) and not one of [`RESERVED_APPNAMES`]. Resource
/// instance names are not appnames (see [`is_instance_name`]).
pub fn is_appname(name: &str) -> bool {
    is_core_name(name) && !RESERVED_APPNAMES.contains(&name)
}

/// `resource.{resource}.{client}`: the app a resource runs as for one
/// client. The parts are not checked here; [`parse_instance_name`] does.
pub fn instance_name(resource: &str, client: &str) -> String {
    format!("{INSTANCE_PREFIX}.{resource}.{client}")
}

/// `(resource, client)` of an instance name, if `name` is one: the prefix
/// `resource.` and two valid appnames ([`is_appname`]). Appnames have no
/// dots, so the split is unambiguous.
pub fn parse_instance_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(INSTANCE_PREFIX)?.strip_prefix('.')?;
    let (resource, client) = rest.split_once('.')?;
    (is_appname(resource) && is_appname(client)).then_some((resource, client))
}

/// A valid resource instance name (`resource.{resource}.{client}`).
pub fn is_instance_name(name: &str) -> bool {
    parse_instance_name(name).is_some()
}

/// Renders the lain.yaml of the resource `resource` for the app `client`
/// with the parameters `client` gave under `use_resources` (see
/// [`crate::UseResource::params`]; a `services` key is not a parameter and
/// is ignored), and validates the result as the app
/// [`instance_name`]`(resource, client)`; see the module docs for what
/// changes and why.
///
/// `file` names the template in diagnostics; every diagnostic also names
/// the resource and the client, and points at the template's line. A
/// template syntax error, an expression that is not allowed or fails to
/// render, a limit reached, an appname other than `resource`, an apptype
/// other than `resource` and anything the rendered file breaks are all
/// reported together. Never panics, whatever the input.
pub fn instantiate(
    template_yaml: &str,
    file: &str,
    resource: &str,
    client: &str,
    params: &BTreeMap<String, ResourceParam>,
    opts: &ParseOptions,
) -> Result<Validated, Diagnostics> {
    let context = format!(
        "resource `{}` rendered for `{}`",
        short(resource),
        short(client)
    );
    let problems = input_problems(resource, client, params);
    let result = if problems.is_empty() {
        let name = instance_name(resource, client);
        let instance = Instance {
            resource,
            client,
            name: &name,
        };
        crate::check_text(file, template_yaml, |text, sink| {
            render_and_validate(text, &instance, params, opts, sink)
        })
    } else {
        let mut sink = Sink::new(file);
        for problem in problems {
            sink.error(Pos::START, problem);
        }
        Err(Diagnostics(sink.into_sorted()))
    };
    with_context(result, &context)
}

/// What is wrong with the inputs that do not come from the template: they
/// have no line in it, so they are reported at its start.
fn input_problems(
    resource: &str,
    client: &str,
    params: &BTreeMap<String, ResourceParam>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (what, name) in [("resource", resource), ("client", client)] {
        if !is_appname(name) {
            out.push(format!(
                "`{}` is not a valid {what} app name: use {NAME_RULE}, other than service, \
                 resource and portal",
                short(name)
            ));
        }
    }
    for (key, value) in params {
        if let ResourceParam::String(v) = value {
            if v.len() > MAX_PARAM_BYTES && key != "services" {
                out.push(format!(
                    "the parameter `{}` in the client's `use_resources` is {} bytes; a resource \
                     parameter may be at most {MAX_PARAM_BYTES} bytes",
                    short(key),
                    v.len()
                ));
            }
        }
    }
    out
}

fn render_and_validate(
    text: &str,
    instance: &Instance<'_>,
    params: &BTreeMap<String, ResourceParam>,
    opts: &ParseOptions,
    sink: &mut Sink,
) -> Option<LainConf> {
    let mut root = yaml::load(text, sink)?;
    let failed = render_values(&mut root, params, sink);
    let mark = sink.mark();
    let conf = validate::validate(&root, opts, sink, Some(instance));
    // A value that did not render has been reported; what the validator
    // says about its unrendered text would only repeat that.
    sink.forget_since(mark, &failed);
    conf
}

/// Prefixes every message with the resource and the client: the same
/// template is rendered for many clients, and only the parameters differ.
fn with_context(
    result: Result<Validated, Diagnostics>,
    context: &str,
) -> Result<Validated, Diagnostics> {
    let tag = |d: &mut crate::Diagnostic| d.message = format!("{context}: {}", d.message);
    match result {
        Ok(mut v) => {
            v.warnings.iter_mut().for_each(tag);
            Ok(v)
        }
        Err(mut d) => {
            d.0.iter_mut().for_each(tag);
            Err(d)
        }
    }
}

// ---- rendering ---------------------------------------------------------------------

/// A string value to render, with its path for messages (`web.memory`).
struct Site<'t> {
    node: &'t mut Node,
    path: String,
    /// `key: {{ x }}` without quotes, which YAML read as a mapping.
    unquoted: bool,
}

/// The shape YAML gives an unquoted `{{ x }}`: a flow mapping whose one
/// key is the mapping `{x: null}` and whose value is null.
fn is_unquoted_expression(node: &Node) -> bool {
    match &node.value {
        Yaml::Map(entries) => {
            entries.len() == 1
                && matches!(entries[0].0.value, Yaml::Map(_))
                && matches!(entries[0].1.value, Yaml::Null)
        }
        _ => false,
    }
}

fn has_template_syntax(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// The values to render, in file order. Keys are not rendered (LAIN did
/// not either). The tree is at most [`yaml::MAX_DEPTH`] deep.
fn collect_sites<'t>(node: &'t mut Node, path: String, out: &mut Vec<Site<'t>>) {
    let unquoted = is_unquoted_expression(node);
    if unquoted || matches!(&node.value, Yaml::Str(s) if has_template_syntax(s)) {
        out.push(Site {
            node,
            path,
            unquoted,
        });
        return;
    }
    match &mut node.value {
        Yaml::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                collect_sites(item, format!("{path}[{i}]"), out);
            }
        }
        Yaml::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let key = k.as_str().map_or_else(|| short(&k.text), short);
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                collect_sites(v, child, out);
            }
        }
        _ => {}
    }
}

/// What went wrong rendering one value.
enum Problem {
    Syntax(String),
    Forbidden(String),
    Render(String),
    Unquoted,
    TooLong(usize),
    Panicked,
    OutOfFuel,
    TooLarge,
    /// Not tried: a limit was reached on an earlier value.
    Skipped,
}

impl Problem {
    fn message(&self, path: &str) -> Option<String> {
        Some(match self {
            Problem::Syntax(d) => format!(
                "`{path}`: template syntax error: {d}; fix the expression (Jinja2 syntax, e.g. \
                 `{{{{ memory|default('64m') }}}}`)"
            ),
            Problem::Forbidden(d) => format!("`{path}`: {d}"),
            Problem::Render(d) => format!("`{path}`: the template failed to render: {d}"),
            Problem::Unquoted => format!(
                "`{path}`: YAML reads an unquoted `{{{{ ... }}}}` as a mapping, before any \
                 rendering: quote the value, e.g. `memory: \"{{{{ memory }}}}\"`"
            ),
            Problem::TooLong(len) => format!(
                "`{path}`: a value holding `{{{{ ... }}}}` may be at most \
                 {MAX_TEMPLATED_VALUE_BYTES} bytes in a resource template; this one is {len}"
            ),
            Problem::Panicked => format!(
                "`{path}`: the template engine failed on this value; simplify the expression"
            ),
            Problem::OutOfFuel => format!(
                "`{path}`: rendering the template took more than {MAX_RENDER_FUEL} steps in all; \
                 a resource template needs a few dozen: simplify its expressions"
            ),
            Problem::TooLarge => format!(
                "`{path}`: the rendered values exceed {MAX_RENDERED_BYTES} bytes in all; check the \
                 parameters given in the client's `use_resources` and how the template uses them"
            ),
            Problem::Skipped => return None,
        })
    }
}

/// What is left for the rest of the file.
struct Budget {
    fuel: u64,
    room: usize,
}

/// Renders every templated string value in place and returns the positions
/// of those that failed (each reported).
fn render_values(
    root: &mut Node,
    params: &BTreeMap<String, ResourceParam>,
    sink: &mut Sink,
) -> HashSet<Pos> {
    let mut sites = Vec::new();
    collect_sites(root, String::new(), &mut sites);
    let mut failed = HashSet::new();
    if sites.is_empty() {
        return failed;
    }
    // The engine borrows the sources for its whole life, while the tree
    // they come from is written to afterwards: render copies.
    let sources: Vec<String> = sites
        .iter()
        .map(|s| match s.node.as_str() {
            Some(src) if !s.unquoted => src.to_owned(),
            _ => String::new(),
        })
        .collect();
    let results: Vec<Result<String, Problem>> = {
        let syntax = syntax();
        let mut env = environment(&syntax);
        let ctx = template_context(params);
        let mut budget = Budget {
            fuel: MAX_RENDER_FUEL,
            room: MAX_RENDERED_BYTES,
        };
        sites
            .iter()
            .zip(&sources)
            .map(|(site, src)| {
                if site.unquoted {
                    return Err(Problem::Unquoted);
                }
                if budget.fuel == 0 || budget.room == 0 {
                    return Err(Problem::Skipped);
                }
                if src.len() > MAX_TEMPLATED_VALUE_BYTES {
                    return Err(Problem::TooLong(src.len()));
                }
                // minijinja is not ours to audit: a panic on some input
                // becomes an error on that value, not a crash of the caller.
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    render_one(&mut env, &syntax, &ctx, src, &mut budget)
                }))
                .unwrap_or(Err(Problem::Panicked))
            })
            .collect()
    };
    for (site, result) in sites.into_iter().zip(results) {
        match result {
            Ok(text) => {
                site.node.value = typed(&text);
                site.node.text = text;
            }
            Err(problem) => {
                if let Some(message) = problem.message(&site.path) {
                    sink.error(site.node.pos, message);
                }
                failed.insert(site.node.pos);
            }
        }
    }
    failed
}

/// LAIN loaded the rendered text as YAML again, so `"3"` became an integer;
/// booleans are what minijinja (`true`) and Jinja2 (`True`) print.
fn typed(text: &str) -> Yaml {
    let t = text.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = t.parse::<i64>() {
            return Yaml::Int(i);
        }
    }
    match t {
        "true" | "True" => Yaml::Bool(true),
        "false" | "False" => Yaml::Bool(false),
        _ => Yaml::Str(text.to_owned()),
    }
}

fn syntax() -> SyntaxConfig {
    // Keep a value's trailing newline: rendering changes only the
    // expressions in it.
    SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .unwrap_or_default()
}

/// An engine with nothing but the allowed filters and tests: no global
/// functions, no loader, no auto-escaping (the output is YAML, not HTML).
fn environment<'s>(syntax: &SyntaxConfig) -> Environment<'s> {
    use minijinja::{filters as f, tests as t};
    let mut env = Environment::empty();
    env.set_syntax(syntax.clone());
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_recursion_limit(RENDER_RECURSION_LIMIT);
    env.add_filter("abs", f::abs);
    env.add_filter("bool", f::bool);
    env.add_filter("capitalize", f::capitalize);
    env.add_filter("count", f::length);
    env.add_filter("d", f::default);
    env.add_filter("default", f::default);
    env.add_filter("float", f::float);
    env.add_filter("int", jinja_int);
    env.add_filter("length", f::length);
    env.add_filter("lower", f::lower);
    env.add_filter("round", f::round);
    env.add_filter("string", f::string);
    env.add_filter("title", f::title);
    env.add_filter("trim", f::trim);
    env.add_filter("upper", f::upper);
    env.add_test("boolean", t::is_boolean);
    env.add_test("defined", t::is_defined);
    env.add_test("divisibleby", t::is_divisibleby);
    env.add_test("eq", t::is_eq);
    env.add_test("even", t::is_even);
    env.add_test("false", t::is_false);
    env.add_test("float", t::is_float);
    env.add_test("ge", t::is_ge);
    env.add_test("gt", t::is_gt);
    env.add_test("in", t::is_in);
    env.add_test("integer", t::is_integer);
    env.add_test("le", t::is_le);
    env.add_test("lt", t::is_lt);
    env.add_test("ne", t::is_ne);
    env.add_test("none", t::is_none);
    env.add_test("number", t::is_number);
    env.add_test("odd", t::is_odd);
    env.add_test("string", t::is_string);
    env.add_test("true", t::is_true);
    env.add_test("undefined", t::is_undefined);
    env
}

/// The client's parameters as template variables.
fn template_context(params: &BTreeMap<String, ResourceParam>) -> Value {
    let vars: BTreeMap<String, Value> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "services")
        .map(|(k, v)| {
            let v = match v {
                ResourceParam::Integer(i) => Value::from(*i),
                ResourceParam::Bool(b) => Value::from(*b),
                ResourceParam::String(s) => Value::from(s.as_str()),
            };
            (k.clone(), v)
        })
        .collect();
    Value::from(vars)
}

fn render_one<'s>(
    env: &mut Environment<'s>,
    syntax: &SyntaxConfig,
    ctx: &Value,
    src: &'s str,
    budget: &mut Budget,
) -> Result<String, Problem> {
    check_tokens(src, syntax)?;
    env.set_fuel(Some(budget.fuel));
    let tmpl = env
        .template_from_str(src)
        .map_err(|e| Problem::Syntax(describe(&e, src)))?;
    let mut out = Capped {
        buf: Vec::new(),
        room: budget.room,
        overflow: false,
    };
    match tmpl.render_captured_to(ctx.clone(), &mut out) {
        Ok(captured) => {
            let used = captured.state().fuel_levels().map_or(0, |(used, _)| used);
            budget.fuel = budget.fuel.saturating_sub(used);
            budget.room = budget.room.saturating_sub(out.buf.len());
            // Only whole `str` pieces are written, so this is UTF-8.
            Ok(String::from_utf8_lossy(&out.buf).into_owned())
        }
        Err(_) if out.overflow => {
            budget.room = 0;
            Err(Problem::TooLarge)
        }
        Err(e) if matches!(e.kind(), ErrorKind::OutOfFuel) => {
            budget.fuel = 0;
            Err(Problem::OutOfFuel)
        }
        Err(e) => {
            // The fuel a failed render used is unknown; without loops it
            // is at most about one instruction per source byte.
            budget.fuel = budget.fuel.saturating_sub(src.len() as u64);
            Err(Problem::Render(describe(&e, src)))
        }
    }
}

/// Refuses the constructs that could make a value grow without bound (see
/// the module docs), using the engine's own tokenizer so that what is
/// checked is exactly what would run.
fn check_tokens(src: &str, syntax: &SyntaxConfig) -> Result<(), Problem> {
    let mut in_expression = 0usize;
    for token in tokenize(src, false, syntax.clone()) {
        let (token, span) = token.map_err(|e| Problem::Syntax(describe(&e, src)))?;
        let why = match token {
            Token::VariableStart => {
                in_expression = 1;
                continue;
            }
            Token::VariableEnd => {
                in_expression = 0;
                continue;
            }
            Token::BlockStart => {
                "statements (`{% ... %}`) are not supported in a resource template: use an \
                 expression, e.g. `{{ a if cond else b }}`"
            }
            Token::Mul | Token::Pow => {
                "`*` and `**` are not allowed in a resource template (they can repeat a value \
                 without bound)"
            }
            Token::Tilde | Token::Plus => {
                "`~` and `+` are not allowed in a resource template: put the parts side by \
                 side instead, e.g. `{{ a }}-{{ b }}`"
            }
            _ if in_expression > MAX_EXPRESSION_TOKENS => {
                "the expression is too long for a resource template: split it or simplify it"
            }
            _ => {
                if in_expression > 0 {
                    in_expression += 1;
                }
                continue;
            }
        };
        let at = if src.contains('\n') {
            format!(
                " (line {}, column {} of the value)",
                span.start_line,
                usize::from(span.start_col) + 1
            )
        } else {
            String::new()
        };
        return Err(Problem::Forbidden(format!("{why}{at}")));
    }
    Ok(())
}

/// A template error as one phrase, with its place in a multi-line value
/// and what is available where a name was unknown.
fn describe(e: &Error, src: &str) -> String {
    let mut out = e.kind().to_string();
    if let Some(detail) = e.detail() {
        out.push_str(": ");
        out.push_str(&short(detail));
    }
    if src.contains('\n') {
        if let Some(line) = e.line() {
            out.push_str(&format!(" (line {line} of the value)"));
        }
    }
    match e.kind() {
        ErrorKind::UnknownFilter => {
            out.push_str(&format!(
                "; the filters a resource template may use: {}",
                TEMPLATE_FILTERS.join(", ")
            ));
        }
        ErrorKind::UnknownTest => {
            out.push_str(&format!(
                "; the tests a resource template may use: {}",
                TEMPLATE_TESTS.join(", ")
            ));
        }
        ErrorKind::UnknownFunction => {
            out.push_str(
                "; a resource template has no functions: use the client's parameters and filters",
            );
        }
        _ => {}
    }
    out
}

/// Collects output up to a byte budget; the write that would pass it fails
/// and stops the render.
struct Capped {
    buf: Vec<u8>,
    room: usize,
    overflow: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if data.len() > self.room.saturating_sub(self.buf.len()) {
            self.overflow = true;
            return Err(std::io::Error::other("rendered output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Jinja2's `int(value, default=0, base=10)`: a value that does not convert
/// gives the default, where minijinja's own `int` fails. Templates rely on
/// it (`{{ num_instances|default(3)|int(3) }}`).
fn jinja_int(
    value: &Value,
    default: Option<Value>,
    base: Option<u32>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let default = match default {
        Some(d) => d,
        None => kwargs
            .get::<Option<Value>>("default")?
            .unwrap_or_else(|| Value::from(0)),
    };
    let base = match base {
        Some(b) => b,
        None => kwargs.get::<Option<u32>>("base")?.unwrap_or(10),
    };
    kwargs.assert_all_used()?;
    if !(2..=36).contains(&base) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "int: the base must be between 2 and 36",
        ));
    }
    let converted = match value.kind() {
        ValueKind::Bool => Some(i64::from(value.is_true())),
        ValueKind::Number => value.as_i64().or_else(|| {
            f64::try_from(value.clone())
                .ok()
                .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                .map(|f| f.trunc() as i64)
        }),
        ValueKind::String => value.as_str().and_then(|s| {
            let s = s.trim();
            i64::from_str_radix(s, base).ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                    .map(|f| f.trunc() as i64)
            })
        }),
        _ => None,
    };
    Ok(converted.map_or(default, Value::from))
}
