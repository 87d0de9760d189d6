use super::*;

fn chart_json(html: &str, id: &str) -> serde_json::Value {
    let open = format!("id=\"data-{id}\">");
    let start = html.find(&open).expect("the chart's data block") + open.len();
    let end = start + html[start..].find("</script>").expect("its end");
    serde_json::from_str(&html[start..end].replace("<\\/", "</")).expect("valid JSON")
}

#[test]
fn a_page_embeds_every_asset_and_each_charts_data_as_json() {
    let mut c = Chart::new(
        "lat",
        "A </script> title",
        Axis::linear("x"),
        Axis::log("ms"),
    );
    c.series(Series::new("p99"));
    c.series(Series::reference("bound"));
    c.row(1.0, [Some(2.5), Some(3.0)]);
    c.row(2.0, [None, Some(3.0)]);
    c.row(3.0, [Some(f64::NAN), Some(3.0)]);
    c.annotate("p99", 1.0, "knee", "here");
    let mut s = Section::new("S & T");
    s.chart(c);
    let mut page = Page::new("t");
    page.section(s);
    page.section(Section::new("empty, left out"));
    let html = page.render();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("empty, left out"));
    assert!(html.contains("<h2>S &amp; T</h2>"));
    // Nothing is loaded from elsewhere.
    for needle in ["<script src", "<link", "<img", "<iframe", "@import", "url("] {
        assert!(!html.contains(needle), "{needle}");
    }
    assert!(html.contains("default-src 'none'"));
    // The library and the glue are inline, each script closed once.
    assert!(html.contains("Dygraph"));
    assert!(html.contains("quarryCharts"));
    assert_eq!(html.matches("</script>").count(), 3);
    let json = chart_json(&html, "lat");
    assert_eq!(json["title"], "A </script> title");
    assert_eq!(json["rows"][0], serde_json::json!([1.0, 2.5, 3.0]));
    // A missing or non-finite value is a gap.
    assert_eq!(json["rows"][1], serde_json::json!([2.0, null, 3.0]));
    assert_eq!(json["rows"][2], serde_json::json!([3.0, null, 3.0]));
    assert_eq!(json["series"][1]["reference"], true);
    assert_eq!(json["annotations"][0]["short"], "knee");
    // The fallback table holds every row.
    assert!(html.contains("<summary>Data (3 rows)</summary>"));
    assert!(html.contains("<td>2.5</td>"));
}

#[test]
fn bars_step_over_their_category_and_tabulate_as_given() {
    let bars = vec![("a".to_owned(), Some(10.0)), ("b".to_owned(), None)];
    let c = Chart::bar(
        "s",
        "cost",
        "strategy",
        Axis::from_zero("USD"),
        "cost",
        &bars,
    );
    assert_eq!(c.kind, ChartKind::Bars);
    assert_eq!(c.x.categories, ["a", "b"]);
    let xs: Vec<f64> = c.rows.iter().map(|r| r.0).collect();
    assert_eq!(xs, [-0.4, 0.4, 0.6, 1.4]);
    assert_eq!(c.rows[0].1, [Some(Value::Point(10.0))]);
    assert_eq!(c.rows[2].1, [None]);
    let t = c.data_table();
    assert_eq!(t.rows.len(), 2);
    assert_eq!(t.rows[1][1].text, "-");
}

#[test]
fn numbers_and_percentiles_read_as_written() {
    assert_eq!(number(3.0), "3");
    assert_eq!(number(2.5), "2.5");
    assert_eq!(number(1234.5678), "1234.57");
    assert_eq!(number(0.000_125), "0.000125");
    assert_eq!(percentile_text(2.0), "50%");
    assert_eq!(percentile_text(100.0), "99%");
    assert_eq!(percentile_text(1000.0), "99.9%");
}

#[test]
fn escape_covers_markup_and_quotes() {
    assert_eq!(
        escape("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
    assert_eq!(script_safe("a</script><!--/</g"), "a<\\/script><\\!--/</g");
    assert_eq!(json_safe("\"</b>\""), "\"<\\/b>\"");
    // The vendored script needs no change at all.
    assert_eq!(script_safe(DYGRAPHS_JS), DYGRAPHS_JS);
}
