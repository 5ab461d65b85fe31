//! The nginx-style grammar SRS uses: `name arg...;` and `name arg... { ... }`, `#` comments,
//! `"..."`/`'...'` quoting, and `include FILE;` splicing another file in place.
//!
//! Input is untrusted in the sense that anyone may hand us any file: every size, nesting level
//! and include chain is bounded, and nothing here can panic.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::ConfigError;

/// Largest config file we read; real ones are a few KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Deepest `{` nesting inside one file (SRS needs 4).
pub const MAX_BLOCK_DEPTH: usize = 16;
/// Longest chain of `include`s.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Total directives across all files, so includes cannot multiply into a memory bomb.
pub const MAX_DIRECTIVES: usize = 100_000;

/// One `name args;` or `name args { children }`, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub children: Vec<Directive>,
    /// True for `name { }` even when empty: `vhost x;` and `vhost x {}` mean different things.
    pub block: bool,
    pub file: Rc<str>,
    /// Line of the directive's name.
    pub line: u32,
    /// Line of the `;` or `{` that ended the directive; differs from `line` when arguments ran
    /// over several lines, the usual symptom of a forgotten `;`.
    pub end_line: u32,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
    Eof,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
}

fn is_space(b: u8) -> bool {
    b.is_ascii_whitespace()
}

fn ends_word(b: u8) -> bool {
    is_space(b) || b == b';' || b == b'{' || b == b'}'
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            line: 1,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn bump(&mut self) {
        if self.peek() == Some(b'\n') {
            self.line = self.line.saturating_add(1);
        }
        self.pos = self.pos.saturating_add(1);
    }

    /// Slices only ever fall on ASCII delimiters, hence on char boundaries; `get` keeps that an
    /// invariant we do not have to trust.
    fn slice(&self, from: usize, to: usize) -> &'a str {
        self.src.get(from..to).unwrap_or("")
    }

    /// Returns the token and the line it starts on.
    fn next(&mut self) -> Result<(Tok, u32), (u32, String)> {
        loop {
            match self.peek() {
                None => return Ok((Tok::Eof, self.line)),
                Some(b'#') => {
                    while let Some(b) = self.peek() {
                        if b == b'\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some(b) if is_space(b) => self.bump(),
                Some(_) => break,
            }
        }
        let line = self.line;
        let tok = match self.peek() {
            Some(b';') => {
                self.bump();
                Tok::Semi
            }
            Some(b'{') => {
                self.bump();
                Tok::Open
            }
            Some(b'}') => {
                self.bump();
                Tok::Close
            }
            Some(q @ (b'"' | b'\'')) => Tok::Word(self.quoted(q)?),
            _ => {
                let start = self.pos;
                while let Some(b) = self.peek() {
                    if ends_word(b) {
                        break;
                    }
                    self.bump();
                }
                Tok::Word(self.slice(start, self.pos).to_string())
            }
        };
        Ok((tok, line))
    }

    /// A quoted argument. Only `\\` and an escaped quote are escapes; any other backslash is
    /// literal so Windows-ish paths and regexes survive.
    fn quoted(&mut self, q: u8) -> Result<String, (u32, String)> {
        let open_line = self.line;
        self.bump();
        let mut out = String::new();
        let mut start = self.pos;
        loop {
            match self.peek() {
                None => {
                    return Err((open_line, "unterminated quoted string".to_string()));
                }
                Some(b) if b == q => {
                    out.push_str(self.slice(start, self.pos));
                    self.bump();
                    break;
                }
                Some(b'\\') => {
                    let next = self.src.as_bytes().get(self.pos.saturating_add(1)).copied();
                    match next {
                        Some(n) if n == q || n == b'\\' => {
                            out.push_str(self.slice(start, self.pos));
                            out.push(char::from(n));
                            self.bump();
                            self.bump();
                            start = self.pos;
                        }
                        _ => self.bump(),
                    }
                }
                Some(_) => self.bump(),
            }
        }
        match self.peek() {
            None => Ok(out),
            Some(b) if ends_word(b) => Ok(out),
            Some(_) => Err((
                self.line,
                "expected a space, \";\" or \"{\" after a quoted argument".to_string(),
            )),
        }
    }
}

struct TreeParser<'a> {
    lex: Lexer<'a>,
    file: Rc<str>,
    count: usize,
}

impl TreeParser<'_> {
    fn syntax(&self, line: u32, message: impl Into<String>) -> ConfigError {
        ConfigError::Syntax {
            file: self.file.to_string(),
            line,
            message: message.into(),
        }
    }

    fn next(&mut self) -> Result<(Tok, u32), ConfigError> {
        self.lex
            .next()
            .map_err(|(line, msg)| self.syntax(line, msg))
    }

    /// `opener` is the name and line of the enclosing block, `None` at file level.
    fn block(
        &mut self,
        depth: usize,
        opener: Option<(&str, u32)>,
    ) -> Result<Vec<Directive>, ConfigError> {
        let mut out = Vec::new();
        loop {
            let (tok, line) = self.next()?;
            let name = match tok {
                Tok::Eof => match opener {
                    Some((name, open_line)) => {
                        return Err(self.syntax(
                            open_line,
                            format!("block \"{name}\" is never closed (missing \"}}\")"),
                        ))
                    }
                    None => return Ok(out),
                },
                Tok::Close => match opener {
                    Some(_) => return Ok(out),
                    None => return Err(self.syntax(line, "unexpected \"}\"")),
                },
                Tok::Semi => return Err(self.syntax(line, "unexpected \";\"")),
                Tok::Open => {
                    return Err(self.syntax(line, "unexpected \"{\" (block without a name)"))
                }
                Tok::Word(w) => w,
            };
            if name.is_empty() {
                return Err(self.syntax(line, "empty directive name"));
            }
            self.count = self.count.saturating_add(1);
            if self.count > MAX_DIRECTIVES {
                return Err(self.syntax(line, format!("more than {MAX_DIRECTIVES} directives")));
            }
            let mut args = Vec::new();
            let (block, end_line) = loop {
                let (tok, tline) = self.next()?;
                match tok {
                    Tok::Word(w) => args.push(w),
                    Tok::Semi => break (false, tline),
                    Tok::Open => break (true, tline),
                    Tok::Close => {
                        return Err(self.syntax(
                            tline,
                            format!(
                                "unexpected \"}}\": missing \";\" after \"{name}\" (line {line})"
                            ),
                        ))
                    }
                    Tok::Eof => {
                        return Err(self.syntax(
                            line,
                            format!("\"{name}\": missing \";\" (unexpected end of file)"),
                        ))
                    }
                }
            };
            let children = if block {
                if depth >= MAX_BLOCK_DEPTH {
                    return Err(self.syntax(
                        end_line,
                        format!("blocks nested deeper than {MAX_BLOCK_DEPTH}"),
                    ));
                }
                self.block(depth.saturating_add(1), Some((&name, line)))?
            } else {
                Vec::new()
            };
            out.push(Directive {
                name,
                args,
                children,
                block,
                file: Rc::clone(&self.file),
                line,
                end_line,
            });
        }
    }
}

/// Parses one file's text into directives; `include` is left as an ordinary directive.
#[cfg(test)]
pub fn parse_tree(text: &str, file_name: &str) -> Result<Vec<Directive>, ConfigError> {
    parse_counted(text, file_name).map(|(tree, _)| tree)
}

fn parse_counted(text: &str, file_name: &str) -> Result<(Vec<Directive>, usize), ConfigError> {
    let mut p = TreeParser {
        lex: Lexer::new(text),
        file: Rc::from(file_name),
        count: 0,
    };
    let tree = p.block(0, None)?;
    Ok((tree, p.count))
}

/// State shared across one whole include expansion.
pub struct Includes {
    /// Canonical paths of the files being included right now, outermost first.
    pub stack: Vec<PathBuf>,
    /// Directives produced so far, counting every copy of a file included several times.
    pub total: usize,
}

impl Includes {
    /// `root`: the canonical path of the top file, if it is a real file.
    pub fn new(root: Option<PathBuf>, root_directives: usize) -> Self {
        Includes {
            stack: root.into_iter().collect(),
            total: root_directives,
        }
    }
}

/// Parses a top-level text and expands its includes.
pub fn parse_with_includes(
    text: &str,
    file_name: &str,
    base_dir: Option<&Path>,
    root: Option<PathBuf>,
) -> Result<Vec<Directive>, ConfigError> {
    take_include_notes();
    let (tree, count) = parse_counted(text, file_name)?;
    let mut inc = Includes::new(root, count);
    expand_includes(tree, base_dir, &mut inc)
}

/// Reads a file with a size bound and UTF-8 check; errors name the file.
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("file larger than {MAX_FILE_BYTES} bytes"),
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e
            .as_bytes()
            .get(..at)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
            .saturating_add(1);
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not valid UTF-8 (line {line}, byte {at})"),
        ))
    })
}

thread_local! {
    /// What the includes expanded on this thread had to say about where their files were
    /// found (see [`resolve_include`]); taken by [`take_include_notes`].
    static INCLUDE_NOTES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Most include notes kept from one load.
const MAX_INCLUDE_NOTES: usize = 64;

/// Takes the notes of the last include expansion on this thread (config warnings).
pub fn take_include_notes() -> Vec<String> {
    INCLUDE_NOTES.with(|n| std::mem::take(&mut *n.borrow_mut()))
}

/// Where a relative `include` is read from, as SRS does: the working directory first (SRS
/// opens the path as written). When it is not there, the including file's folder (what
/// sluice did before, and what a config moved with its includes expects), with a note;
/// a note too when both have the file and they differ (the working directory's wins).
/// Err: the paths tried and the last error.
fn resolve_include(
    target: &str,
    base_dir: Option<&Path>,
) -> Result<(PathBuf, Option<String>), (String, std::io::Error)> {
    let as_written = PathBuf::from(target);
    let Some(dir) = base_dir.filter(|_| as_written.is_relative()) else {
        return Ok((as_written, None));
    };
    let beside = dir.join(target);
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "?".into());
    match (std::fs::metadata(&as_written), std::fs::metadata(&beside)) {
        (Ok(_), Ok(_)) => {
            let same = std::fs::canonicalize(&as_written).ok() == std::fs::canonicalize(&beside).ok();
            let note = (!same).then(|| {
                format!(
                    "read from the working directory ({cwd}) as SRS does; {} (next to the including file) is not read",
                    beside.display()
                )
            });
            Ok((as_written, note))
        }
        (Ok(_), Err(_)) => Ok((as_written, None)),
        (Err(_), Ok(_)) => Ok((
            beside.clone(),
            Some(format!(
                "not in the working directory ({cwd}); read {} next to the including file (SRS reads only the working directory's)",
                beside.display()
            )),
        )),
        (Err(e), Err(_)) => Err((
            format!("{} (working directory {cwd}) or {}", target, beside.display()),
            e,
        )),
    }
}

/// Expands every `include` in `tree` (recursively), resolving relative paths against
/// the working directory, then `base_dir` (`None`: the working directory only; see
/// [`resolve_include`]).
pub fn expand_includes(
    tree: Vec<Directive>,
    base_dir: Option<&Path>,
    inc: &mut Includes,
) -> Result<Vec<Directive>, ConfigError> {
    let mut out = Vec::with_capacity(tree.len());
    for mut d in tree {
        if d.name != "include" {
            if d.block {
                d.children = expand_includes(std::mem::take(&mut d.children), base_dir, inc)?;
            }
            out.push(d);
            continue;
        }
        let err = |target: &str, message: String| ConfigError::Include {
            file: d.file.to_string(),
            line: d.line,
            target: target.to_string(),
            message,
        };
        if d.block {
            return Err(err("", "include does not take a block".to_string()));
        }
        if d.args.is_empty() {
            return Err(err("", "expected a file name".to_string()));
        }
        for target in &d.args {
            let (path, note) = resolve_include(target, base_dir)
                .map_err(|(tried, e)| err(target, format!("cannot open {tried}: {e}")))?;
            if let Some(note) = note {
                INCLUDE_NOTES.with(|n| {
                    let mut n = n.borrow_mut();
                    if n.len() < MAX_INCLUDE_NOTES {
                        n.push(format!("{}:{}: include {target}: {note}", d.file, d.line));
                    }
                });
            }
            let canon = std::fs::canonicalize(&path)
                .map_err(|e| err(target, format!("cannot open {}: {e}", path.display())))?;
            if inc.stack.contains(&canon) {
                return Err(err(target, "include cycle".to_string()));
            }
            if inc.stack.len() >= MAX_INCLUDE_DEPTH {
                return Err(err(
                    target,
                    format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
                ));
            }
            let text = read_file(&path).map_err(|e| err(target, e.to_string()))?;
            let name = path.display().to_string();
            let (sub, count) = parse_counted(&text, &name)?;
            inc.total = inc.total.saturating_add(count);
            if inc.total > MAX_DIRECTIVES {
                return Err(err(
                    target,
                    format!("more than {MAX_DIRECTIVES} directives in all files"),
                ));
            }
            inc.stack.push(canon);
            let dir = path.parent().map(Path::to_path_buf);
            let sub = expand_includes(sub, dir.as_deref(), inc);
            inc.stack.pop();
            out.extend(sub?);
        }
    }
    Ok(out)
}
