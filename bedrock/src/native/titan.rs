//! Amazon Titan Text's native InvokeModel bodies: `inputText` in, `results`
//! out (PROTOCOL.md §2.4).

use serde::{Deserialize, Serialize};

use super::fields::{Fields, MalformedInput};
use crate::TokenUsage;

/// `textGenerationConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanGenerationConfig {
    /// Output cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_token_count: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Stop sequences (sent even when empty by the AWS examples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
}

/// The InvokeModel request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanRequest {
    /// The prompt.
    pub input_text: String,
    /// Generation parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_generation_config: Option<TitanGenerationConfig>,
}

pub(crate) const REQUEST_KEYS: [&str; 2] = ["inputText", "textGenerationConfig"];

impl TitanRequest {
    /// Validates and decodes a body: `inputText` required, no unknown key.
    pub fn parse(body: &[u8]) -> Result<Self, MalformedInput> {
        let mut f = Fields::parse(body, &["inputText"], &REQUEST_KEYS)?;
        Ok(TitanRequest {
            input_text: f.required("inputText")?,
            text_generation_config: f.optional("textGenerationConfig")?,
        })
    }
}

/// One entry of `results`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanResult {
    /// Output tokens of this result.
    pub token_count: u64,
    /// The generated text.
    pub output_text: String,
    /// `FINISH | LENGTH | STOP_CRITERIA_MET | CONTENT_FILTERED | …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_reason: Option<String>,
}

/// The InvokeModel response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanResponse {
    /// Input tokens.
    pub input_text_token_count: u64,
    /// Generated results (one for text models).
    pub results: Vec<TitanResult>,
}

impl TitanResponse {
    /// Results' text joined.
    pub fn text(&self) -> String {
        self.results
            .iter()
            .map(|r| r.output_text.as_str())
            .collect()
    }

    /// Usage summed over results (Titan has no prompt cache).
    pub fn usage(&self) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_text_token_count,
            output_tokens: self.results.iter().map(|r| r.token_count).sum(),
            ..TokenUsage::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_from_protocol_2_4() {
        let body = r#"{"inputTextTokenCount":9,"results":[{"tokenCount":23,"outputText":"Hello","completionReason":"FINISH"}]}"#;
        let r: TitanResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.results[0].completion_reason.as_deref(), Some("FINISH"));
        assert_eq!(r.usage().input_tokens, 9);
        assert_eq!(r.usage().output_tokens, 23);
        assert_eq!(serde_json::to_string(&r).unwrap(), body);
    }

    #[test]
    fn request() {
        let body = br#"{"inputText":"hi","textGenerationConfig":{"maxTokenCount":512,"temperature":0.5,"topP":0.9,"stopSequences":[]}}"#;
        let r = TitanRequest::parse(body).unwrap();
        assert_eq!(
            r.text_generation_config.as_ref().unwrap().max_token_count,
            Some(512)
        );
        assert_eq!(serde_json::to_vec(&r).unwrap(), body);
        let err = TitanRequest::parse(br#"{"inputText":7}"#).unwrap_err();
        assert!(
            err.detail.starts_with("#/inputText: invalid type: integer"),
            "{}",
            err.detail
        );
    }
}
