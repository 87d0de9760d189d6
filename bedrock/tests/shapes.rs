//! Serialized bodies against the botocore service model: every member Quarry
//! writes must exist in the model's shape under the same JSON name, every
//! required member must be present, enums and integer bounds must hold. The
//! model is walked generically, so a new field in our types is checked
//! without touching this file.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use quarry_bedrock::*;
use serde_json::{Value, json};

fn model() -> &'static Value {
    static MODEL: OnceLock<Value> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/bedrock-runtime.service-2.json"
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    })
}

/// Every way `json` departs from shape `name`, as `path: problem` lines.
fn violations(name: &str, json: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(name, json, "$", &mut out);
    out
}

fn walk(name: &str, json: &Value, path: &str, out: &mut Vec<String>) {
    let shape = &model()["shapes"][name];
    assert!(shape.is_object(), "shape {name} not in the model");
    let mut bad = |problem: String| out.push(format!("{path} ({name}): {problem}"));
    match shape["type"].as_str().unwrap() {
        "structure" if shape["document"] == true => {}
        "structure" => walk_structure(name, shape, json, path, out),
        "list" => match json.as_array() {
            Some(items) => {
                let member = shape["member"]["shape"].as_str().unwrap();
                for (i, item) in items.iter().enumerate() {
                    walk(member, item, &format!("{path}[{i}]"), out);
                }
            }
            None => bad(format!("expected a list, got {json}")),
        },
        "map" => match json.as_object() {
            Some(map) => {
                let value = shape["value"]["shape"].as_str().unwrap();
                for (k, v) in map {
                    walk(value, v, &format!("{path}.{k}"), out);
                }
            }
            None => bad(format!("expected a map, got {json}")),
        },
        "string" => match json.as_str() {
            Some(s) => {
                if let Some(values) = shape["enum"].as_array()
                    && !values.iter().any(|v| v == s)
                {
                    bad(format!("{s:?} is not one of {values:?}"));
                }
                if shape["min"]
                    .as_u64()
                    .is_some_and(|min| (s.chars().count() as u64) < min)
                {
                    bad(format!("{s:?} is shorter than {}", shape["min"]));
                }
            }
            None => bad(format!("expected a string, got {json}")),
        },
        "blob" => {
            if !json.is_string() {
                bad(format!("expected base64 text, got {json}"));
            }
        }
        "integer" | "long" => match json.as_i64() {
            Some(n) => {
                if shape["min"].as_i64().is_some_and(|min| n < min) {
                    bad(format!("{n} is below the minimum {}", shape["min"]));
                }
            }
            None => bad(format!("expected an integer, got {json}")),
        },
        "float" | "double" => {
            if !json.is_number() {
                bad(format!("expected a number, got {json}"));
            }
        }
        "boolean" => {
            if !json.is_boolean() {
                bad(format!("expected a boolean, got {json}"));
            }
        }
        other => bad(format!("unchecked shape type {other}")),
    }
}

fn walk_structure(name: &str, shape: &Value, json: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = json.as_object() else {
        out.push(format!("{path} ({name}): expected an object, got {json}"));
        return;
    };
    // Members bound to the URI or headers are not in the body.
    let body_members: BTreeMap<String, &str> = shape["members"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, m)| m.get("location").is_none())
        .map(|(member, m)| {
            let wire = m["jsonName"].as_str().unwrap_or(member).to_owned();
            (wire, m["shape"].as_str().unwrap())
        })
        .collect();
    if shape["union"] == true && obj.len() != 1 {
        out.push(format!(
            "{path} ({name}): a union needs exactly one member, has {}",
            obj.len()
        ));
    }
    for (key, value) in obj {
        match body_members.get(key) {
            Some(member_shape) => walk(member_shape, value, &format!("{path}.{key}"), out),
            None => out.push(format!(
                "{path} ({name}): member {key:?} is not in the model"
            )),
        }
    }
    for required in shape["required"].as_array().into_iter().flatten() {
        let required = required.as_str().unwrap();
        let in_body = shape["members"][required].get("location").is_none();
        let wire = shape["members"][required]["jsonName"]
            .as_str()
            .unwrap_or(required);
        if in_body && !obj.contains_key(wire) {
            out.push(format!(
                "{path} ({name}): required member {wire:?} is missing"
            ));
        }
    }
}

fn assert_conforms(name: &str, value: &impl serde::Serialize) {
    let json = serde_json::to_value(value).unwrap();
    let problems = violations(name, &json);
    assert!(problems.is_empty(), "{json}\n{}", problems.join("\n"));
}

fn full_request() -> ConverseRequest {
    let cache = CachePointBlock {
        kind: CachePointType::Default,
        ttl: Some(CacheTtl::FiveMinutes),
    };
    ConverseRequest {
        messages: vec![
            Message {
                role: Role::User,
                content: vec![
                    ContentBlock::Text("shared prefix".to_owned()),
                    ContentBlock::CachePoint(cache),
                    ContentBlock::Image(ImageBlock {
                        format: "png".to_owned(),
                        source: MediaSource::Bytes(Blob(vec![1, 2, 3])),
                    }),
                    ContentBlock::Document(DocumentBlock {
                        format: Some("txt".to_owned()),
                        name: "notes".to_owned(),
                        source: DocumentSource::S3Location(S3Location {
                            uri: "s3://b/k".to_owned(),
                            bucket_owner: Some("123456789012".to_owned()),
                        }),
                        context: Some("ctx".to_owned()),
                        citations: Some(json!({"enabled": true})),
                    }),
                    ContentBlock::Other {
                        kind: "video".to_owned(),
                        value: json!({"format": "mp4", "source": {"bytes": "AA=="}}),
                    },
                ],
            },
            Message {
                role: Role::Assistant,
                content: vec![ContentBlock::ToolUse(ToolUseBlock {
                    tool_use_id: "t-1".to_owned(),
                    name: "lookup".to_owned(),
                    input: json!({"q": 1}),
                    kind: None,
                })],
            },
            Message {
                role: Role::User,
                content: vec![ContentBlock::ToolResult(ToolResultBlock {
                    tool_use_id: "t-1".to_owned(),
                    content: vec![json!({"json": {"a": 1}}), json!({"text": "ok"})],
                    status: Some("success".to_owned()),
                    kind: None,
                })],
            },
        ],
        system: vec![
            SystemContentBlock::Text("be brief".to_owned()),
            SystemContentBlock::CachePoint(cache),
        ],
        inference_config: Some(InferenceConfiguration {
            max_tokens: Some(512),
            temperature: Some(0.7),
            top_p: Some(0.9),
            stop_sequences: vec!["\n\nHuman:".to_owned()],
        }),
        tool_config: Some(json!({
            "tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}],
            "toolChoice": {"auto": {}}
        })),
        guardrail_config: Some(
            json!({"guardrailIdentifier": "g", "guardrailVersion": "1", "trace": "enabled"}),
        ),
        additional_model_request_fields: Some(json!({"top_k": 200})),
        prompt_variables: Some(json!({"topic": {"text": "rust"}})),
        additional_model_response_field_paths: vec!["/stop_sequence".to_owned()],
        request_metadata: Some(BTreeMap::from([("run".to_owned(), "r1".to_owned())])),
        performance_config: Some(PerformanceConfiguration {
            latency: Some(PerformanceLatency::Optimized),
        }),
        service_tier: Some(ServiceTier {
            kind: ServiceTierType::Priority,
        }),
        output_config: Some(json!({"effort": "low"})),
    }
}

/// The real Converse body of PROTOCOL.md §2.2 (trace filled in, plus the
/// unmodelled `serverToolUsage` live responses carry).
const REAL_CONVERSE_RESPONSE: &str = r#"{"output":{"message":{"role":"assistant","content":[{"text":"Hello! How can I assist you today? If"}]}},"stopReason":"max_tokens","usage":{"inputTokens":2,"outputTokens":10,"totalTokens":12,"cacheReadInputTokens":0,"cacheWriteInputTokens":0,"cacheDetails":[{"ttl":"1h","inputTokens":0}],"serverToolUsage":{}},"metrics":{"latencyMs":352},"additionalModelResponseFields":{"stop_sequence":null},"trace":{"promptRouter":{"invokedModelId":"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"}},"performanceConfig":{"latency":"optimized"},"serviceTier":{"type":"priority"}}"#;

#[test]
fn the_walker_catches_wrong_names_and_missing_members() {
    let wrong =
        json!({"messages": [{"role": "user", "content": [{"text": "x"}]}], "inference_config": {}});
    assert!(
        violations("ConverseRequest", &wrong)[0]
            .contains("\"inference_config\" is not in the model")
    );
    let missing = json!({"output": {"message": {"role": "assistant", "content": []}}, "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}});
    assert!(violations("ConverseResponse", &missing)[0].contains("\"stopReason\" is missing"));
    let bad_enum = json!({"messages": [{"role": "bot", "content": []}]});
    assert_eq!(violations("ConverseRequest", &bad_enum).len(), 1);
    let bad_union = json!({"messages": [{"role": "user", "content": [{"text": "a", "cachePoint": {"type": "default"}}]}]});
    assert_eq!(violations("ConverseRequest", &bad_union).len(), 1);
    let zero_max = json!({"inferenceConfig": {"maxTokens": 0}});
    assert_eq!(violations("ConverseRequest", &zero_max).len(), 1);
}

#[test]
fn converse_requests_conform() {
    let request = full_request();
    assert_conforms("ConverseRequest", &request);
    assert_conforms("ConverseStreamRequest", &request);
    assert_conforms(
        "CountTokensRequest",
        &CountTokensRequest {
            input: CountTokensInput::Converse(ConverseTokensRequest::from(&request)),
        },
    );
    assert_conforms(
        "CountTokensRequest",
        &CountTokensRequest {
            input: CountTokensInput::InvokeModel(InvokeModelTokensRequest {
                body: Blob(b"{}".to_vec()),
            }),
        },
    );
    let back: ConverseRequest = serde_json::from_slice(&request.to_vec()).unwrap();
    assert_eq!(back, request);
}

#[test]
fn converse_responses_conform() {
    let real: ConverseResponse = serde_json::from_str(REAL_CONVERSE_RESPONSE).unwrap();
    assert_eq!(real.stop_reason, StopReason::MaxTokens);
    assert_eq!(real.text(), "Hello! How can I assist you today? If");
    assert_eq!(real.metrics.latency_ms, 352);
    assert_eq!(
        real.usage.to_usage(),
        TokenUsage {
            input_tokens: 2,
            output_tokens: 10,
            ..TokenUsage::default()
        }
    );
    assert_eq!(
        real.usage.cache_details.as_ref().unwrap()[0].ttl,
        CacheTtl::OneHour
    );
    assert_conforms("ConverseResponse", &real);
    let back: ConverseResponse =
        serde_json::from_value(serde_json::to_value(&real).unwrap()).unwrap();
    assert_eq!(back, real);

    let built = ConverseResponse {
        output: ConverseOutput {
            message: Message {
                role: Role::Assistant,
                content: vec![ContentBlock::Text("hi".to_owned())],
            },
        },
        stop_reason: StopReason::EndTurn,
        usage: ConverseUsage::from_usage(&TokenUsage {
            input_tokens: 5,
            output_tokens: 1,
            cache_read_input_tokens: 1024,
            cache_write_input_tokens: 0,
        }),
        metrics: ConverseMetrics { latency_ms: 7 },
        additional_model_response_fields: None,
        trace: None,
        performance_config: None,
        service_tier: None,
    };
    assert_conforms("ConverseResponse", &built);
    assert_conforms(
        "CountTokensResponse",
        &CountTokensResponse { input_tokens: 123 },
    );
}

#[test]
fn golden_body_of_protocol_1_4() {
    let request = ConverseRequest {
        messages: vec![Message::user_text("Hello")],
        inference_config: Some(InferenceConfiguration {
            max_tokens: Some(64),
            ..Default::default()
        }),
        ..Default::default()
    };
    let body = request.to_vec();
    assert_eq!(body, br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":64}}"#);
    assert_eq!(body.len(), 94);
    let endpoint = Endpoint::aws("us-east-1").unwrap();
    let model = ModelId::parse("us.anthropic.claude-3-5-sonnet-20241022-v2:0").unwrap();
    assert_eq!(
        endpoint.uri(&model, Operation::Converse).to_string(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    );
}

#[test]
fn native_responses_of_protocol_2_4() {
    let cases: [(ModelFamily, &str, &str, u64, u64); 4] = [
        (
            ModelFamily::Anthropic,
            r#"{"id":"msg_bdrk_012GBPzpcoMCLP1b2pcJsSHk","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi! 👋 How are you doing today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":15}}"#,
            "end_turn",
            10,
            15,
        ),
        (
            ModelFamily::Llama,
            r#"{"generation":"…","prompt_token_count":14,"generation_token_count":205,"stop_reason":"stop"}"#,
            "stop",
            14,
            205,
        ),
        (
            ModelFamily::Titan,
            r#"{"inputTextTokenCount":9,"results":[{"tokenCount":23,"outputText":"…","completionReason":"FINISH"}]}"#,
            "FINISH",
            9,
            23,
        ),
        (
            ModelFamily::Nova,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"…"}]}},"stopReason":"end_turn","usage":{"inputTokens":42,"outputTokens":128,"totalTokens":170,"cacheReadInputTokenCount":0,"cacheWriteInputTokenCount":0}}"#,
            "end_turn",
            42,
            128,
        ),
    ];
    for (family, body, stop, input, output) in cases {
        let response = NativeResponse::parse(family, body.as_bytes()).unwrap();
        let summary = response.summarize(&ResponseHeaders::default());
        assert_eq!(summary.stop_reason.as_deref(), Some(stop), "{family}");
        let usage = summary.usage.unwrap();
        assert_eq!(
            (usage.input_tokens, usage.output_tokens),
            (input, output),
            "{family}"
        );
        assert_eq!(summary.usage_source, Some(UsageSource::NativeBody));
        assert_eq!(response.to_vec(), body.as_bytes(), "{family} round trip");
    }
}

fn prompt_strategy() -> impl Strategy<Value = Prompt> {
    (
        proptest::option::of("[ -~]{1,40}"),
        proptest::option::of("\\PC{0,40}"),
        "\\PC{0,60}",
        1u32..200_000,
        proptest::option::of(0u8..=100),
        proptest::option::of(prop_oneof![
            Just(CacheTtl::FiveMinutes),
            Just(CacheTtl::OneHour)
        ]),
    )
        .prop_map(
            |(system, cached_prefix, user_text, max_tokens, temp, cache_ttl)| Prompt {
                system,
                cached_prefix,
                user_text,
                max_tokens,
                temperature: temp.map(|t| f32::from(t) / 100.0),
                cache_ttl,
                service_tier: None,
                history: Vec::new(),
                conversation_cache: false,
            },
        )
}

proptest! {
    #[test]
    fn every_body_round_trips(prompt in prompt_strategy()) {
        let converse = prompt.converse_request();
        assert_conforms("ConverseRequest", &converse);
        let back: ConverseRequest = serde_json::from_slice(&converse.to_vec()).unwrap();
        prop_assert_eq!(back, converse);
        for family in ModelFamily::ALL {
            let native = prompt.native_request(family);
            let parsed = NativeRequest::parse(family, &native.to_vec()).unwrap();
            prop_assert_eq!(&parsed, &native);
            let count = prompt.count_tokens_invoke(family);
            assert_conforms("CountTokensRequest", &count);
            let back: CountTokensRequest = serde_json::from_slice(&count.to_vec()).unwrap();
            prop_assert_eq!(back, count);
        }
        let count = prompt.count_tokens_converse();
        assert_conforms("CountTokensRequest", &count);
        let back: CountTokensRequest = serde_json::from_slice(&count.to_vec()).unwrap();
        prop_assert_eq!(back, count);
    }
}
