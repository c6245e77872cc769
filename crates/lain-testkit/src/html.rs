//! Reading forms out of HTML pages as a browser would send them back
//! (sso's sign-in and device pages, console's web forms).

/// An HTML attribute value with its entities decoded.
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of the forms on an HTML page, `(name, value)`.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('"')?;
            let rest = rest.strip_prefix(" value=\"")?;
            let (value, _) = rest.split_once('"')?;
            Some((unescape(name), unescape(value)))
        })
        .collect()
}

/// The value of the hidden field `name`, if the page has one.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    hidden_fields(html)
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// A sign-in page's form (its hidden fields) filled in with `user` and
/// `password`.
pub fn login_form(html: &str, user: &str, password: &str) -> Vec<(String, String)> {
    let mut form = hidden_fields(html);
    form.push(("username".into(), user.into()));
    form.push(("password".into(), password.into()));
    form
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_fields_are_read_and_decoded() {
        let page = r#"<form><input type="hidden" name="state" value="a&amp;b&quot;c">
            <input name="username"><input type="hidden" name="csrf" value="t0k"></form>"#;
        assert_eq!(
            hidden_fields(page),
            [
                ("state".into(), "a&b\"c".into()),
                ("csrf".into(), "t0k".into())
            ]
        );
        assert_eq!(hidden_field(page, "csrf").as_deref(), Some("t0k"));
        assert_eq!(hidden_field(page, "nope"), None);
        let f = login_form(page, "alice", "pw");
        assert_eq!(
            f[2..],
            [
                ("username".into(), "alice".into()),
                ("password".into(), "pw".into())
            ]
        );
    }
}
