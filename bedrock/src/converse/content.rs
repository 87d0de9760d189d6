//! Messages and content blocks shared by Converse, ConverseStream, CountTokens
//! and the Nova native body (PROTOCOL.md §2.1). Unions are objects with exactly
//! one key; kinds Quarry does not model are kept as raw JSON so the simulator
//! can accept (and echo) them instead of failing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, DeserializeOwned};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A service-model `Blob`: raw bytes, base64 in JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64
            .decode(text.as_bytes())
            .map(Blob)
            .map_err(|e| de::Error::custom(format_args!("blob is not valid base64: {e}")))
    }
}

/// `ConversationRole`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The caller's turn.
    User,
    /// The model's turn.
    Assistant,
    /// In the enum of the model, though Converse takes system text in `system`.
    System,
}

/// `Message`: one turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said, in order.
    pub content: Vec<ContentBlock>,
}

impl Message {
    /// A user message with a single text block.
    pub fn user_text(text: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: vec![ContentBlock::Text(text.into())],
        }
    }

    /// The concatenation of every text block, as a client would display it.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// `CachePointType`: only `default` exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CachePointType {
    /// The single cache point type.
    #[default]
    Default,
}

/// `CacheTTL`: how long a prompt-cache entry lives (§5.8); it also picks
/// the cache-write price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CacheTtl {
    /// Five minutes, refreshed on hit (the default).
    #[default]
    #[serde(rename = "5m")]
    FiveMinutes,
    /// One hour (some Claude models only).
    #[serde(rename = "1h")]
    OneHour,
}

impl CacheTtl {
    /// The spelling used on the wire and in specs (`"5m"`, `"1h"`).
    pub fn as_str(self) -> &'static str {
        match self {
            CacheTtl::FiveMinutes => "5m",
            CacheTtl::OneHour => "1h",
        }
    }
}

/// `CachePointBlock`: everything before it may be served from the prompt cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CachePointBlock {
    /// Always `default`.
    #[serde(rename = "type")]
    pub kind: CachePointType,
    /// Absent means five minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<CacheTtl>,
}

/// `S3Location`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Location {
    /// `s3://bucket/key`.
    pub uri: String,
    /// The bucket owner's account id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_owner: Option<String>,
}

/// `ImageSource` / the byte-or-S3 part of video sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MediaSource {
    /// Inline bytes (base64 in JSON).
    Bytes(Blob),
    /// An object in S3.
    S3Location(S3Location),
}

/// `ImageBlock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBlock {
    /// `png | jpeg | gif | webp`.
    pub format: String,
    /// Where the image is.
    pub source: MediaSource,
}

/// `DocumentSource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DocumentSource {
    /// Inline bytes.
    Bytes(Blob),
    /// An object in S3.
    S3Location(S3Location),
    /// Plain text.
    Text(String),
    /// Structured content blocks, kept raw.
    Content(Vec<Value>),
}

/// `DocumentBlock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentBlock {
    /// `pdf | csv | doc | docx | xls | xlsx | html | txt | md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// 1..200 characters.
    pub name: String,
    /// Where the document is.
    pub source: DocumentSource,
    /// Context for citations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// `{"enabled": bool}`, kept raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<Value>,
}

/// `ToolUseBlock`: the model asks for a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock {
    /// `[a-zA-Z0-9_.:-]{1,64}`.
    pub tool_use_id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments (a JSON document).
    pub input: Value,
    /// `server_tool_use` for server-side tools.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `ToolResultBlock`: the caller's answer to a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock {
    /// The id from the matching [`ToolUseBlock`].
    pub tool_use_id: String,
    /// `ToolResultContentBlock` unions (`json`, `text`, `image`, ...), kept raw.
    pub content: Vec<Value>,
    /// `success | error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The result's type, for server-side tools.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `ContentBlock`: a union, so exactly one member on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentBlock {
    /// `{"text": "..."}`.
    Text(String),
    /// `{"image": {...}}`.
    Image(ImageBlock),
    /// `{"document": {...}}`.
    Document(DocumentBlock),
    /// `{"toolUse": {...}}`.
    ToolUse(ToolUseBlock),
    /// `{"toolResult": {...}}`.
    ToolResult(ToolResultBlock),
    /// `{"cachePoint": {...}}`.
    CachePoint(CachePointBlock),
    /// Any other member (`video`, `reasoningContent`, `guardContent`, ...),
    /// kept as received.
    Other {
        /// The member name.
        kind: String,
        /// The member's value.
        value: Value,
    },
}

/// `SystemContentBlock`: a union of `text`, `guardContent` and `cachePoint`.
#[derive(Debug, Clone, PartialEq)]
pub enum SystemContentBlock {
    /// `{"text": "..."}` (at least one character).
    Text(String),
    /// `{"cachePoint": {...}}`.
    CachePoint(CachePointBlock),
    /// Any other member, kept as received.
    Other {
        /// The member name.
        kind: String,
        /// The member's value.
        value: Value,
    },
}

fn serialize_member<S: Serializer, T: Serialize + ?Sized>(
    serializer: S,
    kind: &str,
    value: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(kind, value)?;
    map.end()
}

/// Takes the single member of a union object, or says why there is not one.
fn union_member<E: de::Error>(union: &str, map: Map<String, Value>) -> Result<(String, Value), E> {
    if map.len() != 1 {
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        return Err(E::custom(format_args!(
            "{union} is a union: expected exactly one member, found {} {keys:?}",
            map.len()
        )));
    }
    // unwrap is safe because the map has exactly one entry.
    Ok(map.into_iter().next().unwrap())
}

/// Decodes a known member's value, naming the member when it is malformed.
fn member<T: DeserializeOwned, E: de::Error>(
    union: &str,
    kind: &str,
    value: Value,
) -> Result<T, E> {
    serde_json::from_value(value).map_err(|e| E::custom(format_args!("{union}.{kind}: {e}")))
}

impl Serialize for ContentBlock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ContentBlock::Text(t) => serialize_member(s, "text", t),
            ContentBlock::Image(b) => serialize_member(s, "image", b),
            ContentBlock::Document(b) => serialize_member(s, "document", b),
            ContentBlock::ToolUse(b) => serialize_member(s, "toolUse", b),
            ContentBlock::ToolResult(b) => serialize_member(s, "toolResult", b),
            ContentBlock::CachePoint(b) => serialize_member(s, "cachePoint", b),
            ContentBlock::Other { kind, value } => serialize_member(s, kind, value),
        }
    }
}

impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const U: &str = "ContentBlock";
        let (kind, value) = union_member(U, Map::deserialize(d)?)?;
        Ok(match kind.as_str() {
            "text" => ContentBlock::Text(member(U, &kind, value)?),
            "image" => ContentBlock::Image(member(U, &kind, value)?),
            "document" => ContentBlock::Document(member(U, &kind, value)?),
            "toolUse" => ContentBlock::ToolUse(member(U, &kind, value)?),
            "toolResult" => ContentBlock::ToolResult(member(U, &kind, value)?),
            "cachePoint" => ContentBlock::CachePoint(member(U, &kind, value)?),
            _ => ContentBlock::Other { kind, value },
        })
    }
}

impl Serialize for SystemContentBlock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SystemContentBlock::Text(t) => serialize_member(s, "text", t),
            SystemContentBlock::CachePoint(b) => serialize_member(s, "cachePoint", b),
            SystemContentBlock::Other { kind, value } => serialize_member(s, kind, value),
        }
    }
}

impl<'de> Deserialize<'de> for SystemContentBlock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const U: &str = "SystemContentBlock";
        let (kind, value) = union_member(U, Map::deserialize(d)?)?;
        Ok(match kind.as_str() {
            "text" => {
                let text: String = member(U, &kind, value)?;
                if text.is_empty() {
                    return Err(de::Error::custom(
                        "SystemContentBlock.text: must be at least 1 character",
                    ));
                }
                SystemContentBlock::Text(text)
            }
            "cachePoint" => SystemContentBlock::CachePoint(member(U, &kind, value)?),
            _ => SystemContentBlock::Other { kind, value },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_round_trip() {
        let text = r#"[{"text":"Hi"},{"cachePoint":{"type":"default","ttl":"1h"}},{"image":{"format":"png","source":{"bytes":"AAEC"}}},{"toolUse":{"toolUseId":"t1","name":"f","input":{"a":1}}},{"toolResult":{"toolUseId":"t1","content":[{"json":{}}],"status":"success"}},{"video":{"format":"mp4","source":{"bytes":""}}},{"document":{"format":"txt","name":"n","source":{"text":"body"}}}]"#;
        let blocks: Vec<ContentBlock> = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&blocks).unwrap(), text);
        assert!(
            matches!(&blocks[2], ContentBlock::Image(ImageBlock { source: MediaSource::Bytes(b), .. }) if b.0 == [0, 1, 2])
        );
        assert!(matches!(&blocks[5], ContentBlock::Other { kind, .. } if kind == "video"));
    }

    #[test]
    fn malformed_known_members_name_themselves() {
        let err = serde_json::from_value::<ContentBlock>(json!({"image": {"format": 5}}))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("ContentBlock.image: "), "{err}");
        let err =
            serde_json::from_value::<ContentBlock>(json!({"cachePoint": {"type": "forever"}}))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("ContentBlock.cachePoint") && err.contains("forever"),
            "{err}"
        );
        let err = serde_json::from_value::<ContentBlock>(json!({"text": "a", "image": {}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one member, found 2"), "{err}");
        let err = serde_json::from_value::<ContentBlock>(
            json!({"image": {"format": "png", "source": {"bytes": "!!"}}}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("base64"), "{err}");
        let err = serde_json::from_value::<SystemContentBlock>(json!({"text": ""}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 1"), "{err}");
    }

    #[test]
    fn message_text_joins_text_blocks() {
        let m: Message = serde_json::from_value(json!({"role":"assistant","content":[{"text":"a"},{"reasoningContent":{}},{"text":"b"}]})).unwrap();
        assert_eq!(m.text(), "ab");
        assert!(serde_json::from_value::<Message>(json!({"role":"bot","content":[]})).is_err());
    }
}
