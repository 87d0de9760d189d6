//! Meta Llama's native InvokeModel bodies: a pre-templated `prompt` in,
//! `generation` and token counts out (PROTOCOL.md §2.4).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{Fields, MalformedInput};
use crate::TokenUsage;

/// The InvokeModel request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaRequest {
    /// The prompt, already in the Llama chat template.
    pub prompt: String,
    /// Output cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gen_len: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Base64 images for the vision models, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Value>,
}

pub(crate) const REQUEST_KEYS: [&str; 5] =
    ["prompt", "max_gen_len", "temperature", "top_p", "images"];

impl LlamaRequest {
    /// Validates and decodes a body: `prompt` required, no unknown key.
    pub fn parse(body: &[u8]) -> Result<Self, MalformedInput> {
        let mut f = Fields::parse(body, &["prompt"], &REQUEST_KEYS)?;
        Ok(LlamaRequest {
            prompt: f.required("prompt")?,
            max_gen_len: f.optional("max_gen_len")?,
            temperature: f.optional("temperature")?,
            top_p: f.optional("top_p")?,
            images: f.optional("images")?,
        })
    }

    /// The Llama 3 chat template for one system and one user turn.
    pub fn chat_prompt(system: Option<&str>, user: &str) -> String {
        let mut prompt = String::with_capacity(user.len() + 200);
        prompt.push_str("<|begin_of_text|>");
        if let Some(system) = system {
            prompt.push_str("<|start_header_id|>system<|end_header_id|>\n\n");
            prompt.push_str(system);
            prompt.push_str("<|eot_id|>");
        }
        prompt.push_str("<|start_header_id|>user<|end_header_id|>\n\n");
        prompt.push_str(user);
        prompt.push_str("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
        prompt
    }

    /// The Llama 3 chat template over a conversation: each turn's user
    /// text and, for the earlier turns, the assistant's answer; the prompt
    /// ends open for the last turn's answer. One turn without an answer is
    /// [`LlamaRequest::chat_prompt`].
    pub fn conversation_prompt(system: Option<&str>, turns: &[(&str, Option<&str>)]) -> String {
        let size: usize = turns
            .iter()
            .map(|(q, a)| q.len() + a.map_or(0, str::len) + 120)
            .sum();
        let mut prompt = String::with_capacity(size + 200);
        prompt.push_str("<|begin_of_text|>");
        if let Some(system) = system {
            prompt.push_str("<|start_header_id|>system<|end_header_id|>\n\n");
            prompt.push_str(system);
            prompt.push_str("<|eot_id|>");
        }
        for (user, answer) in turns {
            prompt.push_str("<|start_header_id|>user<|end_header_id|>\n\n");
            prompt.push_str(user);
            prompt.push_str("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
            if let Some(answer) = answer {
                prompt.push_str(answer);
                prompt.push_str("<|eot_id|>");
            }
        }
        prompt
    }
}

/// The InvokeModel response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlamaResponse {
    /// The generated text.
    pub generation: String,
    /// Input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_token_count: Option<u64>,
    /// Output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_token_count: Option<u64>,
    /// `stop | length`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

impl LlamaResponse {
    /// Usage, when both counts are present (Llama has no prompt cache).
    pub fn usage(&self) -> Option<TokenUsage> {
        Some(TokenUsage {
            input_tokens: self.prompt_token_count?,
            output_tokens: self.generation_token_count?,
            ..TokenUsage::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_from_protocol_2_4() {
        let body = r#"{"generation":"Hello there","prompt_token_count":14,"generation_token_count":205,"stop_reason":"length"}"#;
        let r: LlamaResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.stop_reason.as_deref(), Some("length"));
        let u = r.usage().unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (14, 205));
        assert_eq!(serde_json::to_string(&r).unwrap(), body);
    }

    #[test]
    fn request_parse_and_template() {
        let prompt = LlamaRequest::chat_prompt(Some("sys"), "hi");
        assert_eq!(
            prompt,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        let body = serde_json::json!({"prompt": prompt, "max_gen_len": 512, "temperature": 0.5, "top_p": 0.9});
        let r = LlamaRequest::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.max_gen_len, Some(512));
        let err = LlamaRequest::parse(br#"{"prompt":"x","max_tokens":5}"#).unwrap_err();
        assert_eq!(
            err.detail,
            "#: extraneous key [max_tokens] is not permitted"
        );
        let err = LlamaRequest::parse(br#"{"max_gen_len":5}"#).unwrap_err();
        assert_eq!(err.detail, "#: required key [prompt] not found");
    }
}
