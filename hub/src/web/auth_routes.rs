//! Sign-in and sign-out: `/auth/login`, `/auth/callback`, `/auth/demo`, `/logout`.
//! Every failure becomes a readable page with a way forward, never a 500.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Key, PrivateCookieJar};
use serde::Deserialize;

use super::client::Client;
use super::cookies::{SESSION_COOKIE, removal, session_cookie};
use super::{WebState, pages};
use crate::auth::{Callback, Mode, SignInError};
use crate::model::{SessionToken, Timestamp};

fn error_page(e: &SignInError) -> Response {
    let status = match e {
        SignInError::ProviderUnreachable(_) | SignInError::UnknownIssuer(_) => StatusCode::BAD_GATEWAY,
        SignInError::Disabled(_) => StatusCode::FORBIDDEN,
        SignInError::NotAvailable => StatusCode::NOT_FOUND,
        SignInError::Store(_) | SignInError::Directory(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    pages::signin_error(status, e.public_message(), e.retryable())
}

/// `GET /auth/login`: off to the provider (or to the demo form).
pub(super) async fn login(State(state): State<WebState>, client: Client) -> Response {
    if let Err(wait) = state.limiter.check(client.ip) {
        return pages::too_many(wait);
    }
    match state.auth.mode() {
        Mode::Demo => Redirect::to("/auth/demo").into_response(),
        Mode::Oidc => match state.auth.begin(&client.info).await {
            Ok(url) => Redirect::to(&url).into_response(),
            Err(e) => error_page(&e),
        },
    }
}

/// The provider's answer.
#[derive(Deserialize)]
pub(super) struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`: verifies everything and starts a session.
pub(super) async fn callback(
    State(state): State<WebState>,
    client: Client,
    jar: PrivateCookieJar<Key>,
    params: Result<Query<CallbackParams>, QueryRejection>,
) -> Response {
    if let Err(wait) = state.limiter.check(client.ip) {
        return pages::too_many(wait);
    }
    let Ok(Query(p)) = params else {
        return error_page(&SignInError::MalformedCallback("unreadable query".into()));
    };
    let callback = Callback { code: p.code, state: p.state, error: p.error, error_description: p.error_description };
    match state.auth.finish(callback, &client.info).await {
        Ok((_user, token)) => signed_in(&state, jar, &token),
        Err(e) => error_page(&e),
    }
}

fn signed_in(state: &WebState, jar: PrivateCookieJar<Key>, token: &SessionToken) -> Response {
    let expires = Timestamp::now().plus(state.auth.sessions().lifetime());
    (jar.add(session_cookie(token, expires)), Redirect::to("/")).into_response()
}

/// `GET /auth/demo`: the demo form, only in demo mode.
pub(super) async fn demo_form(State(state): State<WebState>) -> Response {
    match state.auth.mode() {
        Mode::Demo => pages::demo_signin(None),
        Mode::Oidc => pages::not_found("Sign-in goes through your organisation's identity provider."),
    }
}

/// The demo form's field.
#[derive(Deserialize)]
pub(super) struct DemoForm {
    name: String,
}

/// `POST /auth/demo`.
pub(super) async fn demo_submit(
    State(state): State<WebState>,
    client: Client,
    jar: PrivateCookieJar<Key>,
    form: Result<Form<DemoForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Err(wait) = state.limiter.check(client.ip) {
        return pages::too_many(wait);
    }
    let Ok(Form(form)) = form else {
        return pages::demo_signin(Some("Please enter your name."));
    };
    match state.auth.demo_sign_in(&form.name, &client.info).await {
        Ok((_user, token)) => signed_in(&state, jar, &token),
        Err(e @ SignInError::InvalidName(_)) => pages::demo_signin(Some(e.public_message())),
        Err(e) => error_page(&e),
    }
}

/// `POST /logout`: ends this device's session.
pub(super) async fn logout(State(state): State<WebState>, client: Client, jar: PrivateCookieJar<Key>) -> Response {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        let token = SessionToken::from_string(cookie.value());
        if let Err(e) = state.auth.sign_out(&token, &client.info).await {
            return super::ApiError::Unavailable(e.to_string()).into_response();
        }
    }
    (jar.remove(removal()), Redirect::to("/")).into_response()
}
