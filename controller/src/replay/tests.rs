use super::*;

const MODEL: &str = "meta.llama3-3-70b-instruct-v1:0";

fn line(offset: f64, input: u64, output: u64) -> String {
    format!(
        r#"{{"offset":{offset},"model":"{MODEL}","input_tokens":{input},"output_tokens":{output}}}"#
    )
}

fn trace_of(lines: &[String]) -> Trace {
    parse_trace(&lines.join("\n"), false).unwrap()
}

#[test]
fn timestamps_become_offsets_from_the_earliest_in_time_order() {
    let text = format!(
        "{}\n\n{}\n",
        r#"{"timestamp":"2026-12-01T10:00:01.5Z","model":"m","input_tokens":5,"output_tokens":2,"session":"a"}"#,
        r#"{"timestamp":"2026-12-01T10:00:00.25Z","model":"m","input_tokens":7,"output_tokens":3,"operation":"Converse"}"#,
    );
    let t = parse_trace(&text, false).unwrap();
    assert_eq!(t.lines.len(), 2);
    assert_eq!((t.lines[0].line, t.lines[0].at_ns), (3, 0));
    assert_eq!((t.lines[1].line, t.lines[1].at_ns), (1, 1_250_000_000));
    assert_eq!(t.lines[0].operation, Operation::Converse);
    assert_eq!(t.lines[1].operation, Operation::ConverseStream);
    assert_eq!(t.lines[1].session.as_deref(), Some("a"));
    assert!(t.start_unix_ns.is_some());
}

#[test]
fn bad_lines_name_line_and_field_or_are_skipped_and_counted() {
    let text = [
        line(0.0, 10, 5),
        r#"{"offset":1,"model":"m","input_tokens":0,"output_tokens":5}"#.to_owned(),
        r#"{"offset":1,"model":"m","output_tokens":5}"#.to_owned(),
        r#"{"offset":-1,"model":"m","input_tokens":3,"output_tokens":5}"#.to_owned(),
        r#"{"timestamp":"2026-12-01T10:00:00Z","model":"m","input_tokens":3,"output_tokens":5}"#
            .to_owned(),
        r#"{"offset":1,"model":"m","input_tokens":3,"output_tokens":5,"colour":"red"}"#.to_owned(),
        r#"{"offset":1,"model":"m","input_tokens":3,"output_tokens":5,"operation":"Chat"}"#
            .to_owned(),
        "{not json".to_owned(),
    ]
    .join("\n");
    let issues = parse_trace(&text, false).unwrap_err();
    let got: Vec<(u64, &str)> = issues.iter().map(|i| (i.line, i.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, "input_tokens"),
            (3, "input_tokens"),
            (4, "offset"),
            (5, "timestamp"),
            (6, "colour"),
            (7, "operation"),
            (8, ""),
        ]
    );
    assert_eq!(
        issues[0].render(Path::new("t.jsonl")),
        "t.jsonl:2: input_tokens: must be between 1 and 1000000, got 0"
    );
    assert!(issues[2].message.contains(">= 0"), "{:?}", issues[2]);
    let t = parse_trace(&text, true).unwrap();
    assert_eq!(t.lines.len(), 1);
    assert_eq!(t.skipped.len(), 7);
    // Nothing valid at all is an error even when skipping.
    assert!(parse_trace("{}\n", true).is_err());
}

#[test]
fn speed_and_window_rebase_and_compress_the_deadlines() {
    let t = trace_of(&[
        line(0.0, 10, 5),
        line(1.0, 11, 5),
        line(2.0, 12, 5),
        line(4.0, 13, 5),
    ]);
    let opts = ReplayOptions {
        speed: 2.0,
        from: Some(Bound::Offset(Duration::from_secs(1))),
        to: Some(Bound::Offset(Duration::from_secs(4))),
        scale: 1.0,
    };
    let b = build(&t, &opts, 7).unwrap();
    let at: Vec<u64> = b.replay.requests().iter().map(|r| r.at_ns).collect();
    assert_eq!(at, [0, 500_000_000]);
    assert_eq!(b.lines_in_window, 2);
    let inputs: Vec<u32> = b.replay.requests().iter().map(|r| r.input_tokens).collect();
    assert_eq!(inputs, [11, 12]);
    assert_eq!(b.mix.entries().len(), 1);
    assert_eq!(b.mix.entries()[0].model_id, MODEL);
    let empty = ReplayOptions {
        from: Some(Bound::Offset(Duration::from_secs(9))),
        ..ReplayOptions::default()
    };
    assert!(matches!(build(&t, &empty, 7), Err(BuildError::Empty(_))));
    let on_time = ReplayOptions {
        from: Some(Bound::Time(0)),
        ..ReplayOptions::default()
    };
    assert_eq!(
        build(&t, &on_time, 7),
        Err(BuildError::TimeOnOffsets("load.from"))
    );
}

#[test]
fn scale_thins_and_duplicates_deterministically_with_fresh_seeds() {
    let lines: Vec<String> = (0..2_000)
        .map(|i| line(f64::from(i) * 0.01, 10, 5))
        .collect();
    let t = trace_of(&lines);
    let count = |scale: f64, seed: u64| {
        let opts = ReplayOptions {
            scale,
            ..ReplayOptions::default()
        };
        build(&t, &opts, seed).unwrap().replay
    };
    let half = count(0.5, 1).requests().len();
    // Binomial(2000, 0.5): 1000 ± 22 (1σ); 5σ either way.
    assert!((890..=1110).contains(&half), "{half}");
    assert_eq!(count(0.5, 1), count(0.5, 1), "same seed, same replay");
    assert_ne!(count(0.5, 1), count(0.5, 2));
    let doubled = count(2.0, 1);
    assert_eq!(doubled.requests().len(), 4_000);
    let pair = &doubled.requests()[..2];
    assert_eq!(pair[0].at_ns, pair[1].at_ns);
    assert_eq!(pair[0].line, pair[1].line);
    assert_ne!(
        pair[0].text_seed, pair[1].text_seed,
        "a copy gets fresh text"
    );
    let one_and_half = count(1.5, 3).requests().len();
    assert!((2_890..=3_110).contains(&one_and_half), "{one_and_half}");
}

#[test]
fn models_and_operations_make_the_mix_entries() {
    let text = [
        r#"{"offset":0,"model":"a.m-v1","input_tokens":10,"output_tokens":5}"#,
        r#"{"offset":1,"model":"b.m-v1","input_tokens":30,"output_tokens":50,"session":"s"}"#,
        r#"{"offset":2,"model":"a.m-v1","input_tokens":20,"output_tokens":9}"#,
        r#"{"offset":3,"model":"a.m-v1","input_tokens":20,"output_tokens":9,"operation":"Converse"}"#,
    ]
    .join("\n");
    let b = build(
        &parse_trace(&text, false).unwrap(),
        &ReplayOptions::default(),
        0,
    )
    .unwrap();
    let entries = b.mix.entries();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].max_tokens.get(), 9);
    assert_eq!(
        entries[0].input_tokens,
        TokenDistribution::Fixed { tokens: 20 }
    );
    let idx: Vec<u32> = b.replay.requests().iter().map(|r| r.entry).collect();
    assert_eq!(idx, [0, 1, 0, 2]);
    assert_eq!(b.replay.requests()[1].session, Some(fnv1a("s")));
    assert_eq!(b.replay.requests()[0].session, None);
}

const HAIKU_35: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

fn prefixed(offset: f64, input: u64, prefix: &str) -> String {
    format!(
        r#"{{"offset":{offset},"model":"{HAIKU_35}","input_tokens":{input},"output_tokens":5{prefix}}}"#
    )
}

#[test]
fn cache_prefixes_are_checked_and_one_id_sends_one_text() {
    let text = [
        prefixed(
            0.0,
            3_000,
            r#","cache_prefix":"sys","cache_prefix_tokens":2048"#,
        ),
        prefixed(
            1.0,
            2_500,
            r#","cache_prefix":"sys","cache_prefix_tokens":2048"#,
        ),
        prefixed(
            2.0,
            2_500,
            r#","cache_prefix":"other","cache_prefix_tokens":2048"#,
        ),
        prefixed(3.0, 2_500, ""),
    ]
    .join("\n");
    let t = parse_trace(&text, false).unwrap();
    assert_eq!(
        t.lines[0].cache_prefix,
        Some(TracePrefix {
            id: "sys".to_owned(),
            tokens: NonZeroU32::new(2048).unwrap()
        })
    );
    let build_with = |scale: f64, seed: u64| {
        let opts = ReplayOptions {
            scale,
            ..ReplayOptions::default()
        };
        build(&t, &opts, seed).unwrap().replay
    };
    let r = build_with(1.0, 7);
    let p: Vec<Option<ReplayPrefix>> = r.requests().iter().map(|q| q.cache_prefix).collect();
    let (sys, other) = (p[0].unwrap(), p[2].unwrap());
    assert_eq!(p[1], Some(sys), "one id, one prefix");
    assert_ne!(sys.seed, other.seed, "another id, another text");
    assert_eq!((sys.tokens.get(), p[3]), (2048, None));
    // The run's seed picks the text; copies share their line's prefix.
    assert_ne!(build_with(1.0, 8).requests()[0].cache_prefix, Some(sys));
    let doubled = build_with(2.0, 7);
    assert_eq!(doubled.requests()[0].cache_prefix, Some(sys));
    assert_eq!(doubled.requests()[1].cache_prefix, Some(sys));

    let bad = [
        prefixed(0.0, 3_000, r#","cache_prefix":"sys""#),
        prefixed(0.0, 3_000, r#","cache_prefix_tokens":2048"#),
        prefixed(0.0, 3_000, r#","cache_prefix":" ","cache_prefix_tokens":2048"#),
        prefixed(0.0, 3_000, r#","cache_prefix":"sys","cache_prefix_tokens":3000"#),
        prefixed(0.0, 3_000, r#","cache_prefix":"sys","cache_prefix_tokens":0"#),
        prefixed(
            0.0,
            3_000,
            r#","cache_prefix":"sys","cache_prefix_tokens":20,"prompt":"hi""#,
        ),
        format!(
            r#"{{"offset":0,"model":"{MODEL}","input_tokens":3000,"output_tokens":5,"cache_prefix":"sys","cache_prefix_tokens":2048}}"#
        ),
    ]
    .join("\n");
    let issues = parse_trace(&bad, false).unwrap_err();
    let rendered: Vec<String> = issues
        .iter()
        .map(|i| i.render(Path::new("t.jsonl")))
        .collect();
    assert_eq!(
        rendered,
        [
            "t.jsonl:1: cache_prefix_tokens: is required with cache_prefix: the prefix's tokens (part of input_tokens)",
            "t.jsonl:2: cache_prefix_tokens: only applies with cache_prefix (the prefix's id)",
            "t.jsonl:3: cache_prefix: must not be empty",
            "t.jsonl:4: cache_prefix_tokens: must be between 1 and input_tokens - 1 (2999): the prefix is part of the input, and the rest of the request needs a token; got 3000",
            "t.jsonl:5: cache_prefix_tokens: must be between 1 and input_tokens - 1 (2999): the prefix is part of the input, and the rest of the request needs a token; got 0",
            "t.jsonl:6: cache_prefix: not with prompt: a recorded prompt is sent as recorded, its shared part included",
            "t.jsonl:7: cache_prefix: model \"meta.llama3-3-70b-instruct-v1:0\" does not support prompt caching (PROTOCOL.md §5.8)",
        ]
    );
}
