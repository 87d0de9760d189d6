//! Where requests go: the Bedrock Runtime host for a region (standard, FIPS,
//! dual-stack, China) or a custom endpoint (simulator, VPC endpoint), and the
//! request URI and `Host` value for an operation on a model (PROTOCOL.md §1.1, §1.2).

use http::Uri;

use crate::{ModelId, Operation};

/// Why an endpoint cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The region is empty or not a valid DNS label.
    #[error("invalid region {0:?}: expected a DNS label such as us-east-1")]
    InvalidRegion(String),
    /// FIPS was requested together with a custom endpoint (the SDKs' rule).
    #[error("Invalid Configuration: FIPS and custom endpoint are not supported")]
    FipsWithCustomEndpoint,
    /// Dual-stack was requested together with a custom endpoint.
    #[error("Invalid Configuration: Dualstack and custom endpoint are not supported")]
    DualStackWithCustomEndpoint,
    /// The custom endpoint URL does not parse as an absolute URI.
    #[error("endpoint URL {url:?} is not a valid absolute URL: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The custom endpoint URL is neither `http` nor `https`.
    #[error("endpoint URL {0:?}: scheme must be http or https")]
    UnsupportedScheme(String),
    /// The custom endpoint URL carries a query, fragment or user info, which
    /// operation paths cannot be appended to.
    #[error("endpoint URL {0:?} must not have a query string, fragment or user info")]
    ExtraUrlParts(String),
}

/// How to resolve the endpoint, mirroring the SDK settings (`region`,
/// `use_fips`, `use_dual_stack`, `endpoint_url`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSettings {
    /// The signing region; also picks the AWS host when no URL is given.
    pub region: String,
    /// Use the `bedrock-runtime-fips` host.
    pub use_fips: bool,
    /// Use the dual-stack (IPv4 + IPv6) DNS suffix.
    pub use_dual_stack: bool,
    /// A custom endpoint URL (simulator, VPC endpoint), used verbatim.
    pub endpoint_url: Option<String>,
}

/// A resolved Bedrock Runtime endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    scheme: &'static str,
    /// `host[:port]`, the port only when it is not the scheme's default: what
    /// aws-sigv4 signs as `host`, so it is also what must be sent.
    authority: String,
    /// A custom endpoint's path prefix without a trailing `/` (often empty).
    base_path: String,
    /// The signing region.
    region: String,
}

impl Endpoint {
    /// The standard endpoint `https://bedrock-runtime.{region}.{dnsSuffix}`.
    pub fn aws(region: &str) -> Result<Self, EndpointError> {
        Endpoint::aws_variant(region, false, false)
    }

    /// The AWS endpoint with the FIPS and/or dual-stack variants of §1.1.
    pub fn aws_variant(region: &str, fips: bool, dual_stack: bool) -> Result<Self, EndpointError> {
        check_region(region)?;
        let china = region.starts_with("cn-");
        let suffix = match (china, dual_stack) {
            (false, false) => "amazonaws.com",
            (false, true) => "api.aws",
            (true, false) => "amazonaws.com.cn",
            (true, true) => "api.amazonwebservices.com.cn",
        };
        let service = if fips {
            "bedrock-runtime-fips"
        } else {
            "bedrock-runtime"
        };
        Ok(Endpoint {
            scheme: "https",
            authority: format!("{service}.{region}.{suffix}"),
            base_path: String::new(),
            region: region.to_owned(),
        })
    }

    /// A custom endpoint (`http://127.0.0.1:8080`, a VPC endpoint, a proxy
    /// with a path prefix), signed for `region`.
    pub fn custom(url: &str, region: &str) -> Result<Self, EndpointError> {
        check_region(region)?;
        if url.contains('#') || url.contains('?') {
            return Err(EndpointError::ExtraUrlParts(url.to_owned()));
        }
        let invalid = |reason: String| EndpointError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
        let scheme = match uri.scheme_str() {
            Some("https") => "https",
            Some("http") => "http",
            Some(_) => return Err(EndpointError::UnsupportedScheme(url.to_owned())),
            None => return Err(invalid("missing scheme".to_owned())),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("missing host".to_owned()))?;
        if authority.as_str().contains('@') {
            return Err(EndpointError::ExtraUrlParts(url.to_owned()));
        }
        if authority.host().is_empty() {
            return Err(invalid("missing host".to_owned()));
        }
        let default_port = if scheme == "https" { 443 } else { 80 };
        let authority = match authority.port_u16() {
            Some(port) if port != default_port => format!("{}:{port}", authority.host()),
            _ => authority.host().to_owned(),
        };
        Ok(Endpoint {
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            region: region.to_owned(),
        })
    }

    /// Resolves settings the way the SDKs' endpoint rules do: a custom URL
    /// wins but cannot be combined with FIPS or dual-stack.
    pub fn resolve(settings: &EndpointSettings) -> Result<Self, EndpointError> {
        match &settings.endpoint_url {
            Some(_) if settings.use_fips => Err(EndpointError::FipsWithCustomEndpoint),
            Some(_) if settings.use_dual_stack => Err(EndpointError::DualStackWithCustomEndpoint),
            Some(url) => Endpoint::custom(url, &settings.region),
            None => {
                Endpoint::aws_variant(&settings.region, settings.use_fips, settings.use_dual_stack)
            }
        }
    }

    /// The request URI: `{scheme}://{host}{prefix}/model/{encoded id}/{suffix}`.
    pub fn uri(&self, model_id: &ModelId, operation: Operation) -> Uri {
        let text = format!(
            "{}://{}{}",
            self.scheme,
            self.authority,
            self.path(model_id, operation)
        );
        // unwrap is safe because every part is already valid URI text: the scheme
        // is http(s), the authority and base path came out of a parsed Uri (or a
        // checked region label), the label is percent-encoded and the suffix is static.
        text.parse().unwrap()
    }

    /// The request path alone (`/model/{encoded id}/{suffix}` after any prefix).
    pub fn path(&self, model_id: &ModelId, operation: Operation) -> String {
        format!(
            "{}/model/{}/{}",
            self.base_path,
            model_id.encode_path_segment(),
            operation.path_suffix()
        )
    }

    /// The `Host` header value: what aws-sigv4 signs (`host`, plus `:port`
    /// only when the port is not the scheme's default).
    pub fn host_header(&self) -> &str {
        &self.authority
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.scheme
    }

    /// The base URL without a trailing slash, for logs and reports.
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// The endpoint rules' `isValidHostLabel(Region)`: 1..=63 of `[a-zA-Z0-9-]`,
/// not starting with `-`.
fn check_region(region: &str) -> Result<(), EndpointError> {
    let ok = !region.is_empty()
        && region.len() <= 63
        && !region.starts_with('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(EndpointError::InvalidRegion(region.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sonnet() -> ModelId {
        ModelId::parse("us.anthropic.claude-3-5-sonnet-20241022-v2:0").unwrap()
    }

    #[test]
    fn aws_variants() {
        let cases = [
            (
                "us-east-1",
                false,
                false,
                "bedrock-runtime.us-east-1.amazonaws.com",
            ),
            (
                "us-east-1",
                true,
                false,
                "bedrock-runtime-fips.us-east-1.amazonaws.com",
            ),
            (
                "us-east-1",
                false,
                true,
                "bedrock-runtime.us-east-1.api.aws",
            ),
            (
                "us-east-1",
                true,
                true,
                "bedrock-runtime-fips.us-east-1.api.aws",
            ),
            (
                "cn-north-1",
                false,
                false,
                "bedrock-runtime.cn-north-1.amazonaws.com.cn",
            ),
            (
                "cn-northwest-1",
                false,
                true,
                "bedrock-runtime.cn-northwest-1.api.amazonwebservices.com.cn",
            ),
            (
                "us-gov-west-1",
                true,
                false,
                "bedrock-runtime-fips.us-gov-west-1.amazonaws.com",
            ),
        ];
        for (region, fips, dual, host) in cases {
            let e = Endpoint::aws_variant(region, fips, dual).unwrap();
            assert_eq!(e.host_header(), host);
            assert_eq!(e.region(), region);
            assert_eq!(e.base_url(), format!("https://{host}"));
        }
    }

    #[test]
    fn standard_uri_matches_the_sdks() {
        let e = Endpoint::aws("us-east-1").unwrap();
        assert_eq!(
            e.uri(&sonnet(), Operation::Converse).to_string(),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
        );
        let arn = ModelId::parse(
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
        )
        .unwrap();
        assert_eq!(
            e.uri(&arn, Operation::InvokeModel).path(),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123/invoke"
        );
        for op in Operation::ALL {
            let uri = e.uri(&sonnet(), op);
            assert!(uri.path().ends_with(&format!("/{}", op.path_suffix())));
        }
    }

    #[test]
    fn custom_endpoints() {
        let sim = Endpoint::custom("http://127.0.0.1:18777", "us-east-1").unwrap();
        assert_eq!(sim.host_header(), "127.0.0.1:18777");
        assert_eq!(
            sim.uri(&sonnet(), Operation::ConverseStream).to_string(),
            "http://127.0.0.1:18777/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse-stream"
        );
        let default_port = Endpoint::custom(
            "https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com:443/",
            "us-east-1",
        )
        .unwrap();
        assert_eq!(
            default_port.host_header(),
            "vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com"
        );
        let http80 = Endpoint::custom("http://localhost:80", "eu-west-1").unwrap();
        assert_eq!(http80.host_header(), "localhost");
        let prefixed =
            Endpoint::custom("https://proxy.example.com:8443/bedrock/", "us-west-2").unwrap();
        assert_eq!(prefixed.host_header(), "proxy.example.com:8443");
        assert_eq!(
            prefixed.uri(&sonnet(), Operation::CountTokens).path(),
            "/bedrock/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/count-tokens"
        );
        let v6 = Endpoint::custom("http://[::1]:9000", "us-east-1").unwrap();
        assert_eq!(v6.host_header(), "[::1]:9000");
        assert_eq!(
            v6.uri(&sonnet(), Operation::InvokeModel).host(),
            Some("[::1]")
        );
    }

    #[test]
    fn custom_endpoint_rejections() {
        for url in [
            "http://h/?a=b",
            "http://h/#frag",
            "http://h?",
            "http://user@h/",
        ] {
            assert_eq!(
                Endpoint::custom(url, "us-east-1"),
                Err(EndpointError::ExtraUrlParts(url.to_owned())),
                "{url}"
            );
        }
        assert_eq!(
            Endpoint::custom("ftp://h", "us-east-1"),
            Err(EndpointError::UnsupportedScheme("ftp://h".to_owned()))
        );
        assert!(matches!(
            Endpoint::custom("localhost:8080/x", "us-east-1"),
            Err(EndpointError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Endpoint::custom("not a url", "us-east-1"),
            Err(EndpointError::InvalidUrl { .. })
        ));
        assert_eq!(
            Endpoint::custom("http://h", ""),
            Err(EndpointError::InvalidRegion(String::new()))
        );
        assert!(Endpoint::aws("us_east_1").is_err());
        assert!(Endpoint::aws("us-east-1.evil.com/").is_err());
    }

    #[test]
    fn settings_follow_the_sdk_rules() {
        let mut s = EndpointSettings {
            region: "us-east-1".to_owned(),
            use_fips: true,
            use_dual_stack: false,
            endpoint_url: Some("https://example.com".to_owned()),
        };
        let err = Endpoint::resolve(&s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid Configuration: FIPS and custom endpoint are not supported"
        );
        s.use_fips = false;
        s.use_dual_stack = true;
        assert_eq!(
            Endpoint::resolve(&s).unwrap_err().to_string(),
            "Invalid Configuration: Dualstack and custom endpoint are not supported"
        );
        s.use_dual_stack = false;
        assert_eq!(Endpoint::resolve(&s).unwrap().host_header(), "example.com");
        s.endpoint_url = None;
        s.use_fips = true;
        assert_eq!(
            Endpoint::resolve(&s).unwrap().host_header(),
            "bedrock-runtime-fips.us-east-1.amazonaws.com"
        );
    }
}
