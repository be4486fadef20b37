//! The OpenID Connect relying party: discovery, Authorization Code flow with PKCE, ID token
//! verification and userinfo, on the `openidconnect` crate.

use std::time::Duration;

use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse, reqwest,
};
use serde_json::{Map, Value};
use tokio::sync::RwLock;
use tokio::time::Instant;

use super::attempt::{Attempt, Attempts};
use super::error::{SignInError, chain};
use crate::config::AuthConfig;

/// How long discovery metadata (and the provider's keys) are reused before fetching again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Timeout of each request to the provider.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The relying party for one configured provider.
pub struct Oidc {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    redirect: RedirectUrl,
    scopes: Vec<String>,
    http: reqwest::Client,
    metadata: RwLock<Option<(CoreProviderMetadata, Instant)>>,
}

impl Oidc {
    /// A relying party for `config`, sending people back to `redirect_url`. Nothing is
    /// fetched until the first sign-in, so a provider that is down does not stop the hub.
    pub fn new(config: &AuthConfig, issuer: &str, redirect_url: &str) -> Result<Self, String> {
        let issuer =
            IssuerUrl::new(issuer.trim_end_matches('/').to_string()).map_err(|e| format!("auth.issuer: {e}"))?;
        let redirect = RedirectUrl::new(redirect_url.to_string()).map_err(|e| format!("auth.redirect_url: {e}"))?;
        let http = reqwest::Client::builder()
            // Following redirects would let a provider response point the hub anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            issuer,
            client_id: ClientId::new(config.client_id.clone()),
            client_secret: (!config.client_secret.is_empty())
                .then(|| ClientSecret::new(config.client_secret.expose().to_string())),
            redirect,
            scopes: config.scopes.clone(),
            http,
            metadata: RwLock::new(None),
        })
    }

    /// Provider metadata (discovery + keys), from cache when fresh.
    async fn metadata(&self, force: bool) -> Result<CoreProviderMetadata, SignInError> {
        if !force
            && let Some((md, at)) = self.metadata.read().await.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(md.clone());
        }
        match CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http).await {
            Ok(md) => {
                *self.metadata.write().await = Some((md.clone(), Instant::now()));
                Ok(md)
            }
            Err(e) => {
                let reason = chain(&e);
                if let Some((md, _)) = self.metadata.read().await.as_ref() {
                    tracing::warn!(reason, "identity provider discovery failed; using the metadata fetched before");
                    return Ok(md.clone());
                }
                Err(match e {
                    openidconnect::DiscoveryError::Validation(_) => SignInError::UnknownIssuer(reason),
                    _ => SignInError::ProviderUnreachable(reason),
                })
            }
        }
    }

    fn client(
        &self,
        md: CoreProviderMetadata,
    ) -> openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(md, self.client_id.clone(), self.client_secret.clone())
            .set_redirect_uri(self.redirect.clone())
    }

    /// Starts an attempt: remembers its state, nonce and PKCE verifier, and returns the
    /// provider URL to send the person to.
    pub async fn begin(&self, attempts: &Attempts) -> Result<String, SignInError> {
        let md = self.metadata(false).await?;
        let client = self.client(md);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request =
            client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for scope in self.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        attempts.insert(state.secret().clone(), nonce.secret().clone(), verifier.secret().clone());
        Ok(url.to_string())
    }

    /// Exchanges the code, verifies the ID token and fetches userinfo; returns the merged
    /// claims (userinfo wins over the ID token for profile claims).
    pub async fn finish(&self, code: &str, attempt: Attempt) -> Result<Map<String, Value>, SignInError> {
        let md = self.metadata(false).await?;
        let client = self.client(md.clone());
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SignInError::ProviderUnreachable(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(attempt.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| match &e {
                RequestTokenError::ServerResponse(r) => SignInError::TokenRejected(format!(
                    "{}{}",
                    r.error(),
                    r.error_description().map(|d| format!(": {d}")).unwrap_or_default()
                )),
                RequestTokenError::Request(_) => SignInError::ProviderUnreachable(chain(&e)),
                _ => SignInError::TokenRejected(chain(&e)),
            })?;
        let id_token =
            token.id_token().ok_or_else(|| SignInError::InvalidIdToken("no ID token in the token response".into()))?;
        let nonce = Nonce::new(attempt.nonce);

        // Only what the provider advertises, and never "none".
        let advertised: Vec<CoreJwsSigningAlgorithm> = md
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| **a != CoreJwsSigningAlgorithm::None)
            .cloned()
            .collect();
        let mut client = client;
        let mut verified = {
            let verifier = client.id_token_verifier().set_allowed_algs(advertised.clone());
            id_token.claims(&verifier, &nonce).map(|c| c.subject().to_string())
        };
        if let Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) = &verified {
            // The provider may have rotated its keys since discovery: fetch them once more.
            client = self.client(self.metadata(true).await?);
            let verifier = client.id_token_verifier().set_allowed_algs(advertised);
            verified = id_token.claims(&verifier, &nonce).map(|c| c.subject().to_string());
        }
        let subject = verified.map_err(|e| SignInError::InvalidIdToken(chain(&e)))?;

        let verifier = client.id_token_verifier().allow_any_alg();
        let claims = id_token.claims(&verifier, &nonce).map_err(|e| SignInError::InvalidIdToken(chain(&e)))?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token.signing_alg().map_err(|e| SignInError::InvalidIdToken(chain(&e)))?;
            let key = id_token.signing_key(&verifier).map_err(|e| SignInError::InvalidIdToken(chain(&e)))?;
            let actual = AccessTokenHash::from_token(token.access_token(), alg, key)
                .map_err(|e| SignInError::InvalidIdToken(chain(&e)))?;
            if actual != *expected {
                return Err(SignInError::InvalidIdToken("at_hash does not match the access token".into()));
            }
        }

        let mut merged = jwt_payload(&id_token.to_string())?;
        if let Some(endpoint) = md.userinfo_endpoint() {
            let info = self.userinfo(endpoint.url().as_str(), token.access_token().secret()).await?;
            if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                return Err(SignInError::UserInfo("userinfo belongs to another subject".into()));
            }
            for (k, v) in info {
                if !matches!(k.as_str(), "sub" | "iss" | "aud" | "exp" | "iat" | "nonce") {
                    merged.insert(k, v);
                }
            }
        }
        Ok(merged)
    }

    async fn userinfo(&self, url: &str, access_token: &str) -> Result<Map<String, Value>, SignInError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| SignInError::ProviderUnreachable(format!("userinfo: {}", chain(&e))))?;
        let status = response.status();
        if !status.is_success() {
            return Err(SignInError::UserInfo(format!("userinfo endpoint answered {status}")));
        }
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(SignInError::UserInfo(
                "userinfo is not plain JSON (signed or encrypted userinfo is not supported)".into(),
            ));
        }
        let body =
            response.bytes().await.map_err(|e| SignInError::ProviderUnreachable(format!("userinfo: {}", chain(&e))))?;
        serde_json::from_slice(&body).map_err(|e| SignInError::UserInfo(format!("unreadable: {e}")))
    }
}

/// The claims of a JWT whose signature has already been verified.
fn jwt_payload(jwt: &str) -> Result<Map<String, Value>, SignInError> {
    let payload = jwt.split('.').nth(1).ok_or_else(|| SignInError::InvalidIdToken("not a JWT".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| SignInError::InvalidIdToken(format!("payload: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| SignInError::InvalidIdToken(format!("payload: {e}")))
}
