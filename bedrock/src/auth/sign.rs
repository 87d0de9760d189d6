//! Client-side signing of Bedrock Runtime requests (PROTOCOL.md §1.4, §7.1).
//!
//! SigV4 through aws-sigv4 with signing name `bedrock`, signing exactly
//! `content-type`, `host` and `x-amz-date` (plus `x-amz-security-token` with
//! temporary credentials) — what botocore signs, which reproduces the §1.4
//! golden vector. The `host` signed is the `Host` header sent: taken from the
//! request's `Host` header, or else set from the URI's authority before
//! signing (the "Host-header gotcha"). Bearer mode sets `Authorization:
//! Bearer <key>` instead.

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};

use super::bearer::ApiKey;

/// Bedrock Runtime's SigV4 signing name (not `bedrock-runtime`), §0 item 1.
pub const SIGNING_NAME: &str = "bedrock";

const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// Neither a `Host` header nor an authority in the URI: nothing to sign
    /// as `host`.
    #[error("request has no Host header and its URI has no authority")]
    NoHost,
    /// The `Host` or `Content-Type` header is not visible ASCII.
    #[error("the {0} header is not visible ASCII")]
    HeaderNotAscii(&'static str),
    /// aws-sigv4 rejected the request or the parameters.
    #[error("aws-sigv4 could not sign: {0}")]
    Signing(String),
}

enum Mode {
    SigV4 { region: String, identity: Identity },
    Bearer(ApiKey),
}

/// Signs requests for one identity: SigV4 credentials in a region, or an API key.
pub struct Signer {
    mode: Mode,
}

impl Signer {
    /// A SigV4 signer for `region` with `credentials` (a session token in them
    /// is sent as `x-amz-security-token` and signed). Make a new signer when
    /// the credentials rotate.
    pub fn new(region: impl Into<String>, credentials: Credentials) -> Self {
        Signer {
            mode: Mode::SigV4 {
                region: region.into(),
                identity: credentials.into(),
            },
        }
    }

    /// A signer that sends `Authorization: Bearer <key>`.
    pub fn bearer(api_key: ApiKey) -> Self {
        Signer {
            mode: Mode::Bearer(api_key),
        }
    }

    /// Signs `request`, whose body is `body` (already final: its SHA-256 is
    /// signed), at `time`.
    pub fn sign<B>(
        &self,
        request: &mut http::Request<B>,
        body: &[u8],
        time: SystemTime,
    ) -> Result<(), SignError> {
        let method = request.method().clone();
        let uri = request.uri().clone();
        self.sign_headers(&method, &uri, request.headers_mut(), body, time)
    }

    /// Signs a request given as parts, for callers that build the body apart.
    pub fn sign_parts(
        &self,
        parts: &mut http::request::Parts,
        body: &[u8],
        time: SystemTime,
    ) -> Result<(), SignError> {
        self.sign_headers(&parts.method, &parts.uri, &mut parts.headers, body, time)
    }

    /// Adds `x-amz-date`, `authorization` and (with temporary credentials)
    /// `x-amz-security-token` to `headers`, replacing any from an earlier
    /// attempt; sets `host` from `uri` when absent.
    pub fn sign_headers(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: &[u8],
        time: SystemTime,
    ) -> Result<(), SignError> {
        headers.remove(AUTHORIZATION);
        headers.remove(&X_AMZ_DATE);
        headers.remove(&X_AMZ_SECURITY_TOKEN);
        let (region, identity) = match &self.mode {
            Mode::Bearer(key) => {
                let mut value = HeaderValue::try_from(format!("Bearer {}", key.expose()))
                    .map_err(|_| SignError::HeaderNotAscii("authorization"))?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
                return Ok(());
            }
            Mode::SigV4 { region, identity } => (region, identity),
        };
        if !headers.contains_key(HOST) {
            let authority = uri.authority().ok_or(SignError::NoHost)?;
            let value = HeaderValue::from_str(authority.as_str())
                .map_err(|_| SignError::HeaderNotAscii("host"))?;
            headers.insert(HOST, value);
        }
        let host = header_str(headers, &HOST, "host")?.ok_or(SignError::NoHost)?;
        let content_type = header_str(headers, &CONTENT_TYPE, "content-type")?;
        let signed: Vec<(&str, &str)> = content_type
            .map(|ct| ("content-type", ct))
            .into_iter()
            .chain(std::iter::once(("host", host)))
            .collect();
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let request = SignableRequest::new(
            method.as_str(),
            path_and_query,
            signed.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SignError::Signing(e.to_string()))?;
        let params = v4::SigningParams::builder()
            .identity(identity)
            .region(region)
            .name(SIGNING_NAME)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SignError::Signing(e.to_string()))?
            .into();
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| SignError::Signing(e.to_string()))?
            .into_parts();
        let (new_headers, _params) = instructions.into_parts();
        for header in new_headers {
            let mut value = HeaderValue::from_str(header.value())
                .map_err(|_| SignError::HeaderNotAscii(header.name()))?;
            value.set_sensitive(header.sensitive() || header.name() == "authorization");
            headers.insert(HeaderName::from_static(header.name()), value);
        }
        Ok(())
    }
}

fn header_str<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    label: &'static str,
) -> Result<Option<&'h str>, SignError> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| SignError::HeaderNotAscii(label)))
        .transpose()
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mode {
            Mode::SigV4 { region, .. } => f
                .debug_struct("Signer")
                .field("scheme", &"sigv4")
                .field("region", region)
                .finish_non_exhaustive(),
            Mode::Bearer(_) => f
                .debug_struct("Signer")
                .field("scheme", &"bearer")
                .finish_non_exhaustive(),
        }
    }
}
