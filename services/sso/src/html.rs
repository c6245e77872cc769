//! The few HTML pages sso serves: login, device verification, messages.
//! Every interpolated value goes through [`esc`].

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:sans-serif;max-width:26em;margin:4em auto;padding:0 1em}\
label{display:block;margin:.8em 0 .2em}input{width:100%;padding:.4em;box-sizing:border-box}\
button{margin-top:1em;padding:.5em 1.2em}.err{color:#a00}.hint{color:#555;font-size:.9em}\
input[type=checkbox]{width:auto;margin-right:.5em}.warn{background:#fff4d6;padding:.6em;border:1px solid #e0b000}";

/// A complete page. Frames are refused so the forms cannot be clickjacked.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    page_with_targets(status, title, body, &[])
}

/// The CSP source matching a URL's origin (`scheme://host:port`, or
/// `scheme:` for custom schemes), for `form-action`.
pub fn csp_source(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let src = match u.origin() {
        o @ url::Origin::Tuple(..) => o.ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", u.scheme()),
    };
    // Only characters a CSP source expression may hold.
    src.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".:/-+[]_".contains(&b))
        .then_some(src)
}

/// Like [`page`], for a page whose form submission ends in a redirect to
/// one of `targets` (the client's registered redirect or post-logout URI):
/// browsers apply `form-action` to the redirects after a form post, so the
/// targets' origins are added to it.
pub fn page_with_targets(
    status: StatusCode,
    title: &str,
    body: &str,
    targets: &[&str],
) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t} - lain sso</title><style>{STYLE}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let mut form_action = String::from("'self'");
    for src in targets.iter().filter_map(|t| csp_source(t)) {
        form_action.push(' ');
        form_action.push_str(&src);
    }
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; frame-ancestors 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A page that only says something (errors, confirmations).
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    page(status, title, &format!("<p>{}</p>", esc(text)))
}

/// Hidden form fields.
pub fn hidden(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            )
        })
        .collect()
}

/// The login form posted back to `action`.
pub fn login_form(
    action: &str,
    client_name: &str,
    error: Option<&str>,
    user: &str,
    hidden_fields: &str,
) -> String {
    let err = error
        .map(|e| format!("<p class=\"err\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "<p>Sign in to continue to <b>{client}</b>.</p>{err}\
         <form method=\"post\" action=\"{action}\">{hidden_fields}\
         <label for=\"username\">User name</label><input id=\"username\" name=\"username\" autocomplete=\"username\" value=\"{user}\" required autofocus>\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>",
        client = esc(client_name),
        action = esc(action),
        user = esc(user),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(
            super::esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
