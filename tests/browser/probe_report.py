#!/usr/bin/env python3
"""Loads a Quarry report.html in headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) and prints what a test needs as JSON:

  console    the browser console's entries (level, message)
  requests   every URL the page asked for (Network.requestWillBeSent)
  screenshot the PNG's path and size in bytes
  charts     each chart's labels and rows as dygraphs holds them
             (Dygraph.getValue), and its annotations
  drawn_ms   performance.now() when the glue script had drawn every chart
  load_ms    navigation start to the load event's end

Usage: probe_report.py REPORT_HTML SCREENSHOT_PNG [--rows-limit N]

It asserts nothing about the page: the Rust test (tests/report_html.rs)
holds the figures against results.json, sweep.json and plan.json. It exits
2 when the browser cannot be started.
"""

import json
import os
import shutil
import sys
import time


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    page = os.path.abspath(sys.argv[1])
    shot = sys.argv[2]
    rows_limit = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--rows-limit" else 100000
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError as e:
        print(f"probe_report: selenium is not importable: {e}", file=sys.stderr)
        return 2
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        print("probe_report: chromium or chromedriver is not installed", file=sys.stderr)
        return 2
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,2400",
                "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    except Exception as e:  # noqa: BLE001 - any start failure is the same verdict
        print(f"probe_report: cannot start chromium: {e}", file=sys.stderr)
        return 2
    try:
        driver.set_page_load_timeout(120)
        started = time.monotonic()
        driver.get("file://" + page)
        try:
            WebDriverWait(driver, 60).until(
                lambda d: d.execute_script("return document.body && document.body.getAttribute('data-charts-drawn')"))
        except Exception:  # noqa: BLE001 - say why, then fail
            print("probe_report: the charts were not drawn within 60 s; console:", file=sys.stderr)
            for e in driver.get_log("browser"):
                print(f"  {e.get('level')}: {e.get('message')}", file=sys.stderr)
            return 1
        wall_ms = (time.monotonic() - started) * 1000
        timing = driver.execute_script(
            "var t = performance.getEntriesByType('navigation')[0];"
            "return {load_ms: t ? t.loadEventEnd : null, drawn_ms: window.quarryDrawnMs || null};")
        charts = driver.execute_script(
            """
            var limit = arguments[0];
            var out = {};
            Object.keys(window.quarryCharts || {}).forEach(function (id) {
              var g = window.quarryCharts[id].graph;
              var rows = [];
              var n = Math.min(g.numRows(), limit);
              for (var r = 0; r < n; r++) {
                var row = [];
                for (var c = 0; c < g.numColumns(); c++) { row.push(g.getValue(r, c)); }
                rows.push(row);
              }
              out[id] = {labels: g.getLabels(), num_rows: g.numRows(), rows: rows,
                         annotations: g.annotations().map(function (a) {
                           return {series: a.series, x: a.x, short: a.shortText}; }),
                         drawn: g.getArea().w > 0};
            });
            return out;
            """, rows_limit)
        png = driver.get_screenshot_as_png()
        with open(shot, "wb") as f:
            f.write(png)
        console = [{"level": e.get("level"), "message": e.get("message")}
                   for e in driver.get_log("browser")]
        requests = []
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                requests.append(message["params"]["request"]["url"])
        print(json.dumps({
            "page": "file://" + page,
            "console": console,
            "requests": requests,
            "screenshot": {"path": shot, "bytes": len(png), "png": png[:8] == b"\x89PNG\r\n\x1a\n"},
            "charts": charts,
            "drawn_ms": timing.get("drawn_ms"),
            "load_ms": timing.get("load_ms"),
            "wall_ms": wall_ms,
            "html_bytes": os.path.getsize(page),
        }))
        return 0
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
