//! The Bedrock Runtime operations Quarry speaks, and how each maps onto the wire.

use std::fmt;
use std::str::FromStr;

/// A Bedrock Runtime operation that Quarry can sign, send, serve and measure.
///
/// Every one of them is `POST /model/{modelId}/{suffix}` (PROTOCOL.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `InvokeModel`: a provider-native JSON body in, a native JSON body out.
    InvokeModel,
    /// `InvokeModelWithResponseStream`: native body in, `chunk` events out.
    InvokeModelWithResponseStream,
    /// `Converse`: the unified message API, one JSON response.
    Converse,
    /// `ConverseStream`: the unified message API as an event stream.
    ConverseStream,
    /// `CountTokens`: how many input tokens a request would use; free of charge.
    CountTokens,
}

impl Operation {
    /// Every operation, in a stable order (reports, tables, tests).
    pub const ALL: [Operation; 5] = [
        Operation::InvokeModel,
        Operation::InvokeModelWithResponseStream,
        Operation::Converse,
        Operation::ConverseStream,
        Operation::CountTokens,
    ];

    /// The operation's name as the service model and SDKs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Operation::InvokeModel => "InvokeModel",
            Operation::InvokeModelWithResponseStream => "InvokeModelWithResponseStream",
            Operation::Converse => "Converse",
            Operation::ConverseStream => "ConverseStream",
            Operation::CountTokens => "CountTokens",
        }
    }

    /// The last path segment after `/model/{modelId}/`.
    pub fn path_suffix(self) -> &'static str {
        match self {
            Operation::InvokeModel => "invoke",
            Operation::InvokeModelWithResponseStream => "invoke-with-response-stream",
            Operation::Converse => "converse",
            Operation::ConverseStream => "converse-stream",
            Operation::CountTokens => "count-tokens",
        }
    }

    /// The operation whose path ends in `suffix`, if any.
    pub fn from_path_suffix(suffix: &str) -> Option<Self> {
        Operation::ALL
            .into_iter()
            .find(|op| op.path_suffix() == suffix)
    }

    /// True when the response body is an `application/vnd.amazon.eventstream`.
    pub fn is_streaming(self) -> bool {
        matches!(
            self,
            Operation::InvokeModelWithResponseStream | Operation::ConverseStream
        )
    }

    /// True when the request body is the model family's native JSON (InvokeModel*).
    pub fn is_native(self) -> bool {
        matches!(
            self,
            Operation::InvokeModel | Operation::InvokeModelWithResponseStream
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text was not the name of an operation Quarry supports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown operation {0:?}: expected one of InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream, CountTokens"
)]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    /// Accepts the service-model name in any letter case (`ConverseStream`,
    /// `converse_stream` and the path suffix `converse-stream` all work).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let folded: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        let folded = if folded == "invokewithresponsestream" {
            "invokemodelwithresponsestream".to_owned()
        } else if folded == "invoke" {
            "invokemodel".to_owned()
        } else {
            folded
        };
        Operation::ALL
            .into_iter()
            .find(|op| op.name().to_lowercase() == folded)
            .ok_or_else(|| UnknownOperation(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_path_suffix(op.path_suffix()), Some(op));
            assert_eq!(op.name().parse::<Operation>().unwrap(), op);
            assert_eq!(op.path_suffix().parse::<Operation>().unwrap(), op);
        }
        assert_eq!(Operation::from_path_suffix("apply"), None);
    }

    #[test]
    fn unknown_name_is_named_in_error() {
        let err = "Chat".parse::<Operation>().unwrap_err();
        assert!(err.to_string().contains("\"Chat\""));
    }

    #[test]
    fn streaming_and_native_flags() {
        assert!(Operation::ConverseStream.is_streaming());
        assert!(Operation::InvokeModelWithResponseStream.is_streaming());
        assert!(!Operation::Converse.is_streaming());
        assert!(Operation::InvokeModel.is_native());
        assert!(!Operation::CountTokens.is_native());
    }
}
