//! A field of the simulator's configuration, named by its path
//! (`accounts[1].quotas.tpm`), and a validation failure at it before the
//! file name and line are attached. Shared by `config` and the modules
//! whose parts of the file it validates (`faults`), below both.

/// A validation failure before the file name and line are attached.
pub(crate) struct FieldError {
    pub(crate) path: Vec<Seg>,
    pub(crate) message: String,
}

/// One step of a field path.
#[derive(Debug, Clone)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A failure `message` at `path`.
pub(crate) fn field_error(path: Vec<Seg>, message: impl Into<String>) -> FieldError {
    FieldError {
        path,
        message: message.into(),
    }
}

/// The path as the user reads it: `accounts[1].quotas.tpm`, with keys that
/// are not bare TOML keys quoted (`model_quotas."meta.llama3:0"`).
pub(crate) fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) if k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Key(k) => out.push_str(&format!(".\"{k}\"")),
        }
    }
    out
}

/// The 1-based line where the value at `path` starts in `text`.
pub(crate) fn line_of(text: &str, path: &[Seg]) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let (first, rest) = path.split_first()?;
    let Seg::Key(k) = first else { return None };
    let mut node = doc.get_ref().get(k.as_str())?;
    for seg in rest {
        let next = match seg {
            Seg::Key(k) => node.get_ref().get(k.as_str()),
            Seg::Index(i) => node.get_ref().get(*i),
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    Some(text[..node.span().start].matches('\n').count() + 1)
}

/// A key step.
pub(crate) fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}
