//! Client-side signing of Bedrock Runtime requests (PROTOCOL.md §1.4, §7.1).
//!
//! SigV4 with signing name `bedrock`, signing exactly `content-type`, `host`
//! and `x-amz-date` (plus `x-amz-security-token` with temporary credentials) —
//! what botocore signs, which reproduces the §1.4 golden vector. The `host`
//! signed is the `Host` header sent: taken from the request's `Host` header, or
//! else set from the URI's authority before signing (the "Host-header
//! gotcha"). Bearer mode sets `Authorization: Bearer <key>` instead.
//!
//! The canonical request is built by [`super::canonical`], the code the
//! verifier rebuilds it with, so one implementation of the canonicalisation
//! rules serves both sides; the HMAC chain is aws-sigv4's. The signing key
//! (four HMACs over the secret, the date, the region and the service) is
//! derived once per UTC day and kept, which aws-sigv4's `sign` cannot do:
//! that is most of why signing here costs a third of what `sign` costs (see
//! BENCHMARKS.md, `auth/sign_converse_session_token`). The tests hold every
//! signature to aws-sigv4's `sign`, byte for byte.

use std::fmt;
use std::sync::Mutex;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::sign::v4::generate_signing_key;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};

use super::amz_date::AmzDate;
use super::bearer::ApiKey;
use super::canonical::{self, WireRequest};

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
    /// The `Host` or `Content-Type` header, or the session token, is not
    /// visible ASCII.
    #[error("the {0} header is not visible ASCII")]
    HeaderNotAscii(&'static str),
}

/// SigV4 credentials in a region, and the signing key last derived.
struct SigV4 {
    region: String,
    credentials: Credentials,
    /// The session token as sent (sensitive), for temporary credentials.
    session_token: Option<HeaderValue>,
    /// The signing key for one UTC day (`YYYYMMDD`), derived on first use.
    key: Mutex<Option<([u8; 8], [u8; 32])>>,
}

impl SigV4 {
    /// The signing key for `date`'s day, derived when the day changes.
    fn signing_key(&self, date: AmzDate) -> [u8; 32] {
        let stamp = date.date_stamp();
        // A poisoned lock only means a panic elsewhere mid-store; the
        // Option inside is still a valid cache entry.
        let mut cached = self.key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((day, key)) = *cached
            && day == stamp
        {
            return key;
        }
        let derived = generate_signing_key(
            self.credentials.secret_access_key(),
            date.to_system_time(),
            &self.region,
            SIGNING_NAME,
        );
        let mut key = [0u8; 32];
        key.copy_from_slice(derived.as_ref());
        *cached = Some((stamp, key));
        key
    }
}

enum Mode {
    SigV4(Box<SigV4>),
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
        // A token that is not a valid header value cannot be sent: signing
        // then reports it (`HeaderNotAscii`) rather than sending without it.
        let session_token = credentials
            .session_token()
            .and_then(|token| HeaderValue::from_str(token).ok())
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        Signer {
            mode: Mode::SigV4(Box::new(SigV4 {
                region: region.into(),
                credentials,
                session_token,
                key: Mutex::new(None),
            })),
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
        let sigv4 = match &self.mode {
            Mode::Bearer(key) => {
                let mut value = HeaderValue::try_from(format!("Bearer {}", key.expose()))
                    .map_err(|_| SignError::HeaderNotAscii("authorization"))?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
                return Ok(());
            }
            Mode::SigV4(sigv4) => sigv4,
        };
        if sigv4.credentials.session_token().is_some() && sigv4.session_token.is_none() {
            return Err(SignError::HeaderNotAscii("x-amz-security-token"));
        }
        if !headers.contains_key(HOST) {
            let authority = uri.authority().ok_or(SignError::NoHost)?;
            let value = HeaderValue::from_str(authority.as_str())
                .map_err(|_| SignError::HeaderNotAscii("host"))?;
            headers.insert(HOST, value);
        }
        header_str(headers, &HOST, "host")?.ok_or(SignError::NoHost)?;
        let has_content_type = header_str(headers, &CONTENT_TYPE, "content-type")?.is_some();
        // Sorted, as SigV4 lists them.
        let signed_headers = match (has_content_type, sigv4.session_token.is_some()) {
            (true, false) => "content-type;host;x-amz-date",
            (true, true) => "content-type;host;x-amz-date;x-amz-security-token",
            (false, false) => "host;x-amz-date",
            (false, true) => "host;x-amz-date;x-amz-security-token",
        };
        let date = AmzDate::from_system_time(time);
        // unwrap is safe because the 16 bytes are ASCII digits, 'T' and 'Z'.
        headers.insert(
            X_AMZ_DATE,
            HeaderValue::from_bytes(&date.to_bytes()).unwrap(),
        );
        if let Some(token) = &sigv4.session_token {
            headers.insert(X_AMZ_SECURITY_TOKEN, token.clone());
        }
        let payload_hash = canonical::sha256_hex(body);
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut canonical_request = String::with_capacity(256 + path_and_query.len());
        let wire = WireRequest {
            method: method.as_str(),
            raw_path_and_query: path_and_query,
            headers,
        };
        // Every header named in `signed_headers` was checked or inserted above.
        if let Err(missing) = canonical::write_canonical_request(
            &mut canonical_request,
            wire,
            signed_headers,
            canonical::hex_str(&payload_hash),
        ) {
            unreachable!("the signer inserted every signed header, yet {missing} is missing");
        }
        let mut string_to_sign = String::with_capacity(160);
        canonical::write_string_to_sign(
            &mut string_to_sign,
            date,
            &sigv4.region,
            SIGNING_NAME,
            &canonical_request,
        );
        let signature =
            canonical::signature_hex(&sigv4.signing_key(date), string_to_sign.as_bytes());
        let access_key_id = sigv4.credentials.access_key_id();
        let mut authorization = String::with_capacity(
            canonical::ALGORITHM.len() + access_key_id.len() + 160 + signature.len(),
        );
        authorization.push_str(canonical::ALGORITHM);
        authorization.push_str(" Credential=");
        authorization.push_str(access_key_id);
        authorization.push('/');
        canonical::write_scope(&mut authorization, date, &sigv4.region, SIGNING_NAME);
        authorization.push_str(", SignedHeaders=");
        authorization.push_str(signed_headers);
        authorization.push_str(", Signature=");
        authorization.push_str(canonical::hex_str(&signature));
        let mut value = HeaderValue::try_from(authorization)
            .map_err(|_| SignError::HeaderNotAscii("authorization"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
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
            Mode::SigV4(sigv4) => f
                .debug_struct("Signer")
                .field("scheme", &"sigv4")
                .field("region", &sigv4.region)
                .finish_non_exhaustive(),
            Mode::Bearer(_) => f
                .debug_struct("Signer")
                .field("scheme", &"bearer")
                .finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every signature held to aws-sigv4's own `sign`, byte for byte.

    use std::time::{Duration, UNIX_EPOCH};

    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;
    use proptest::prelude::*;

    use super::*;

    /// One request to sign, as both signers are given it.
    struct Case<'a> {
        credentials: &'a Credentials,
        region: &'a str,
        path: &'a str,
        host: &'a str,
        content_type: Option<&'a str>,
        body: &'a [u8],
        time: SystemTime,
    }

    /// The headers aws-sigv4 adds to the case's request (its `content_type`,
    /// when some, and `host` signed), sorted.
    fn reference(case: &Case<'_>) -> Vec<(String, String)> {
        let identity: Identity = case.credentials.clone().into();
        let signed: Vec<(&str, &str)> = case
            .content_type
            .map(|ct| ("content-type", ct))
            .into_iter()
            .chain(std::iter::once(("host", case.host)))
            .collect();
        let body = SignableBody::Bytes(case.body);
        let request = SignableRequest::new("POST", case.path, signed.into_iter(), body).unwrap();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(case.region)
            .name(SIGNING_NAME)
            .time(case.time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let (headers, _) = instructions.into_parts();
        let mut out: Vec<(String, String)> = headers
            .into_iter()
            .map(|h| (h.name().to_owned(), h.value().to_owned()))
            .collect();
        out.sort();
        out
    }

    /// The headers `signer` adds to the case's request, sorted like
    /// [`reference`]'s.
    fn ours(signer: &Signer, case: &Case<'_>) -> Vec<(String, String)> {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(case.host).unwrap());
        if let Some(ct) = case.content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        let uri: Uri = format!("https://{}{}", case.host, case.path)
            .parse()
            .unwrap();
        signer
            .sign_headers(&Method::POST, &uri, &mut headers, case.body, case.time)
            .unwrap();
        let mut out: Vec<(String, String)> = headers
            .iter()
            .filter(|(name, _)| *name != HOST && *name != CONTENT_TYPE)
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        out.sort();
        out
    }

    fn path_segment() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9._~-]{1,12}",
            Just("us.anthropic.claude-3-5-sonnet-20241022-v2%3A0".to_owned()),
            Just("a:b".to_owned()),
            Just("a%20b".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just(String::new()),
        ]
    }

    proptest! {
        #[test]
        fn signs_as_aws_sigv4_signs(
            segments in proptest::collection::vec(path_segment(), 1..5),
            query in prop_oneof![Just(String::new()), Just("?b=2&a=1".to_owned()), Just("?x=a+b%2F".to_owned())],
            body in proptest::collection::vec(any::<u8>(), 0..300),
            secs in 0u64..4_000_000_000,
            token in proptest::option::of("[A-Za-z0-9+/=]{1,80}"),
            region in prop_oneof![Just("us-east-1"), Just("eu-west-3"), Just("ap-southeast-2")],
            content_type in proptest::option::of(Just("application/json")),
        ) {
            let path = format!("/{}{}", segments.join("/"), query);
            let credentials = Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                token,
                None,
                "test",
            );
            let case = Case {
                credentials: &credentials,
                region,
                path: &path,
                host: "bedrock-runtime.us-east-1.amazonaws.com",
                content_type,
                body: &body,
                time: UNIX_EPOCH + Duration::from_secs(secs),
            };
            let signer = Signer::new(region, credentials.clone());
            prop_assert_eq!(ours(&signer, &case), reference(&case));
        }
    }

    #[test]
    fn the_signing_key_is_rederived_when_the_day_changes() {
        let credentials = Credentials::new("AKID", "secret", None, None, "test");
        // One signer throughout, so its kept key is what is tested.
        let signer = Signer::new("us-east-1", credentials.clone());
        // One minute before and after midnight, then back: each signature
        // must be the one a fresh derivation gives.
        let midnight = UNIX_EPOCH + Duration::from_secs(1_735_689_600);
        for time in [
            midnight - Duration::from_secs(60),
            midnight + Duration::from_secs(60),
            midnight - Duration::from_secs(30),
        ] {
            let case = Case {
                credentials: &credentials,
                region: "us-east-1",
                path: "/model/m/converse",
                host: "bedrock-runtime.us-east-1.amazonaws.com",
                content_type: None,
                body: b"{}",
                time,
            };
            assert_eq!(ours(&signer, &case), reference(&case));
        }
    }

    #[test]
    fn a_session_token_that_cannot_be_sent_is_an_error_not_an_omission() {
        let credentials = Credentials::new("AKID", "secret", Some("bad\ntoken".into()), None, "t");
        let signer = Signer::new("us-east-1", credentials);
        let uri: Uri = "https://h/model/m/converse".parse().unwrap();
        let mut headers = HeaderMap::new();
        let err = signer
            .sign_headers(&Method::POST, &uri, &mut headers, b"{}", UNIX_EPOCH)
            .unwrap_err();
        assert!(matches!(
            err,
            SignError::HeaderNotAscii("x-amz-security-token")
        ));
        assert!(headers.get(AUTHORIZATION).is_none());
    }
}
