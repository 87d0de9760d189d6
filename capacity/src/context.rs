//! The planner's working state: the input, the timeline, and what the plan
//! gathers as it goes (sources cited, assumptions made, inputs missing). Every
//! figure taken from the input is made here, so each one is registered with
//! its source exactly once.

use quarry_bedrock::quota::FactSource;

use crate::figure::{Basis, Figure, Source, SourceKind, Sources, Unit};
use crate::input::PlanInput;
use crate::plan::MissingInput;
use crate::timeline::Timeline;

/// Default months planned ahead.
pub(crate) const DEFAULT_HORIZON_MONTHS: f64 = 12.0;
/// Default days between filing a quota request and needing it: six weeks.
pub(crate) const DEFAULT_LEAD_TIME_DAYS: u32 = 42;

/// The planner's state while it computes one plan.
pub(crate) struct Ctx<'a> {
    pub(crate) input: &'a PlanInput,
    pub(crate) timeline: Timeline,
    sources: Sources,
    assumptions: Vec<String>,
    /// Missing inputs, innermost scope last (see [`Ctx::scoped`]).
    missing: Vec<Vec<MissingInput>>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(input: &'a PlanInput) -> Self {
        let horizon = input.horizon_months.unwrap_or(DEFAULT_HORIZON_MONTHS);
        Ctx {
            input,
            timeline: Timeline::new(input.start, horizon, &input.growth),
            sources: Sources::default(),
            assumptions: Vec::new(),
            missing: vec![Vec::new()],
        }
    }

    /// A figure entered at field path `path` (`class[0].peak_rpm`).
    pub(crate) fn entered(&mut self, path: &str, value: f64, unit: Unit) -> Figure {
        let id = self.entered_source(path);
        Figure::sourced(value, unit, Basis::Entered, &id)
    }

    /// Registers the entered field at `path` as a source; returns its id.
    pub(crate) fn entered_source(&mut self, path: &str) -> String {
        let location = self
            .input
            .origins
            .get(path)
            .map(|o| format!("{}:{}", o.file, o.line));
        self.sources.add(Source {
            id: format!("input:{path}"),
            kind: SourceKind::Entered,
            label: format!("entered {path}"),
            location,
            confidence: None,
        })
    }

    /// A figure read from a measurement: `what` of measured input `label`,
    /// which came from `location` (a results or sweep directory).
    pub(crate) fn measured(
        &mut self,
        label: &str,
        location: &str,
        what: &str,
        value: f64,
        unit: Unit,
    ) -> Figure {
        let id = self.sources.add(Source {
            id: format!("measured:{label}:{what}"),
            kind: SourceKind::Measured,
            label: format!("{what} measured in {label}"),
            location: Some(location.to_owned()),
            confidence: None,
        });
        Figure::sourced(value, unit, Basis::Measured, &id)
    }

    /// A built-in fact with its citation.
    pub(crate) fn builtin(
        &mut self,
        id: &str,
        label: &str,
        fact: FactSource,
        value: f64,
        unit: Unit,
    ) -> Figure {
        let id = self.sources.add(Source {
            id: format!("builtin:{id}"),
            kind: SourceKind::BuiltIn,
            label: label.to_owned(),
            location: Some(fact.cite.to_owned()),
            confidence: Some(fact.confidence.as_str().to_owned()),
        });
        Figure::sourced(value, unit, Basis::BuiltIn, &id)
    }

    /// A built-in price of `model_id`, from the table the caller passed in.
    pub(crate) fn builtin_price_source(&mut self, model_id: &str) -> String {
        let location = self.input.prices.builtin_source.clone();
        self.sources.add(Source {
            id: format!("builtin:price:{model_id}"),
            kind: SourceKind::BuiltIn,
            label: format!("built-in price of {model_id}"),
            location,
            confidence: Some("secondary source".to_owned()),
        })
    }

    /// A default the planner applies because nothing was entered; `why`
    /// goes into the plan's assumptions.
    pub(crate) fn assumed(&mut self, id: &str, label: &str, value: f64, unit: Unit) -> Figure {
        let id = self.sources.add(Source {
            id: format!("assumed:{id}"),
            kind: SourceKind::Assumed,
            label: label.to_owned(),
            location: None,
            confidence: None,
        });
        self.assume(label);
        Figure::sourced(value, unit, Basis::Assumed, &id)
    }

    /// Records an assumption (once).
    pub(crate) fn assume(&mut self, text: impl Into<String>) {
        let text = text.into();
        if !self.assumptions.contains(&text) {
            self.assumptions.push(text);
        }
    }

    /// Records that `section` could not be (fully) computed and which input
    /// would enable it (once).
    pub(crate) fn missing(&mut self, section: impl Into<String>, needs: impl Into<String>) {
        let m = MissingInput {
            section: section.into(),
            needs: needs.into(),
        };
        // Once said by the plan (or an enclosing scope), not repeated by a strategy.
        if self.missing.iter().any(|scope| scope.contains(&m)) {
            return;
        }
        // The stack is never empty: `new` starts it and `scoped` pops only what it pushed.
        if let Some(scope) = self.missing.last_mut() {
            scope.push(m);
        }
    }

    /// Runs `f` with its missing inputs collected apart (a strategy's own),
    /// rather than into the plan's.
    pub(crate) fn scoped<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> (T, Vec<MissingInput>) {
        self.missing.push(Vec::new());
        let out = f(self);
        let missing = if self.missing.len() > 1 {
            self.missing.pop().unwrap_or_default()
        } else {
            Vec::new()
        };
        (out, missing)
    }

    /// The collected sources, assumptions and missing inputs.
    pub(crate) fn finish(self) -> (Vec<Source>, Vec<String>, Vec<MissingInput>) {
        let missing = self.missing.into_iter().flatten().collect();
        (self.sources.into_vec(), self.assumptions, missing)
    }
}
