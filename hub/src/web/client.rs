//! Who is on the other end of a request: address and user agent, for sessions, rate limits
//! and the audit log.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use crate::auth::ClientInfo;

/// The client of a request.
pub struct Client {
    /// Address (unspecified when the transport did not tell, as in in-process tests).
    pub ip: IpAddr,
    /// For sessions and the audit log.
    pub info: ClientInfo,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok(Client {
            ip: addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            info: ClientInfo { ip: addr.map(|a| a.to_string()), user_agent },
        })
    }
}
