//! Server-rendered pages a person may land on outside the app: sign-in errors and the demo
//! sign-in form. Every value is HTML-escaped.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · Hub</title>\n<link rel=\"icon\" href=\"data:,\">\n<link rel=\"stylesheet\" href=\"/hub.css\">\n</head>\n<body>\n\
         <header><h1><a href=\"/\">Hub</a></h1></header>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        escape(title)
    )
}

/// A sign-in problem explained to a person, with a way forward.
pub fn signin_error(status: StatusCode, message: &str, retry: bool) -> Response {
    let action = if retry {
        "<p><a class=\"button\" href=\"/auth/login\">Try again</a></p>"
    } else {
        "<p><a href=\"/\">Back to the start page</a></p>"
    };
    let body = format!(
        "<section class=\"card\" role=\"alert\">\n<h2>Sign-in did not work</h2>\n<p id=\"message\">{}</p>\n{action}\n</section>",
        escape(message)
    );
    (status, Html(page("Sign-in did not work", &body))).into_response()
}

/// The demo sign-in form, with its warning.
pub fn demo_signin(error: Option<&str>) -> Response {
    let error = error.map(|e| format!("<p class=\"state bad\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let body = format!(
        "<p class=\"banner\" role=\"note\"><strong>Demo mode, no real authentication.</strong> \
         Anyone who can open this page can sign in as anyone. Configure an identity provider \
         ([auth] issuer) before real use.</p>\n\
         <section class=\"card\">\n<h2>Sign in</h2>\n{error}\
         <form method=\"post\" action=\"/auth/demo\">\n\
         <label for=\"name\">Your name</label>\n\
         <input id=\"name\" name=\"name\" autocomplete=\"name\" required maxlength=\"64\" autofocus>\n\
         <button type=\"submit\">Sign in</button>\n</form>\n</section>"
    );
    let status = if error.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    (status, Html(page("Sign in (demo)", &body))).into_response()
}

/// A plain "not here" page.
pub fn not_found(message: &str) -> Response {
    let body = format!(
        "<section class=\"card\"><h2>Not found</h2><p>{}</p><p><a href=\"/\">Start page</a></p></section>",
        escape(message)
    );
    (StatusCode::NOT_FOUND, Html(page("Not found", &body))).into_response()
}

/// Too many sign-in attempts from one address.
pub fn too_many(retry_after: std::time::Duration) -> Response {
    let secs = retry_after.as_secs().max(1);
    let body = format!(
        "<section class=\"card\" role=\"alert\"><h2>Too many sign-in attempts</h2>\
         <p>Please wait {secs} seconds, then <a href=\"/auth/login\">try again</a>.</p></section>"
    );
    let mut res = (StatusCode::TOO_MANY_REQUESTS, Html(page("Too many attempts", &body))).into_response();
    res.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(escape("<script>\"'&"), "&lt;script&gt;&quot;&#39;&amp;");
    }
}
