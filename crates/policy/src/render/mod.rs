//! Documents generated from the policy: the privacy notice, the cookie policy
//! and the record of processing. Each is built as a small document model and
//! written out as Markdown or HTML, so both say exactly the same.

pub mod access;
pub mod cookies;
pub mod dataset_rows;
pub mod notice;
pub mod receipt;
pub mod ropa;
mod words;
pub use words::retention_text;

/// What the running configuration actually does, for the statements a
/// notice may make about it. The default claims nothing: a statement about a
/// capability appears only when the deployment turns it on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Data past its retention period is erased automatically.
    pub retention_sweep: bool,
    /// People are told directly (not only by the published notice) about
    /// changes that affect them.
    pub change_notices: bool,
    /// Every access and disclosure is written to a tamper-evident log.
    pub tamper_evident_audit: bool,
}

/// One block of a generated document.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(u8, String),
    Paragraph(String),
    List(Vec<String>),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Document {
    pub fn new(title: impl Into<String>) -> Self {
        Document {
            title: title.into(),
            blocks: Vec::new(),
        }
    }

    pub fn heading(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Heading(2, text.into()));
    }

    pub fn subheading(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Heading(3, text.into()));
    }

    pub fn para(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Paragraph(text.into()));
    }

    pub fn list(&mut self, items: impl IntoIterator<Item = String>) {
        let items: Vec<String> = items.into_iter().collect();
        if !items.is_empty() {
            self.blocks.push(Block::List(items));
        }
    }

    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        if !rows.is_empty() {
            self.blocks.push(Block::Table {
                header: header.iter().map(|h| h.to_string()).collect(),
                rows,
            });
        }
    }

    /// Markdown (CommonMark with pipe tables).
    pub fn markdown(&self) -> String {
        let mut out = format!("# {}\n", self.title);
        for block in &self.blocks {
            out.push('\n');
            match block {
                Block::Heading(level, text) => {
                    out.push_str(&"#".repeat(usize::from(*level)));
                    out.push(' ');
                    out.push_str(text);
                    out.push('\n');
                }
                Block::Paragraph(text) => {
                    out.push_str(text);
                    out.push('\n');
                }
                Block::List(items) => {
                    for item in items {
                        out.push_str("- ");
                        out.push_str(item);
                        out.push('\n');
                    }
                }
                Block::Table { header, rows } => {
                    let cell = |s: &String| s.replace('|', "\\|").replace('\n', " ");
                    out.push_str(&format!(
                        "| {} |\n",
                        header.iter().map(cell).collect::<Vec<_>>().join(" | ")
                    ));
                    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
                    for row in rows {
                        out.push_str(&format!(
                            "| {} |\n",
                            row.iter().map(cell).collect::<Vec<_>>().join(" | ")
                        ));
                    }
                }
            }
        }
        out
    }

    /// A complete, self-contained HTML page: no script, no external resource.
    pub fn html(&self) -> String {
        let mut out = String::from(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        );
        out.push_str(&format!("<title>{}</title>\n", escape(&self.title)));
        out.push_str(
            "<style>body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;\
             line-height:1.5;color:#1a1a1a}table{border-collapse:collapse;width:100%;margin:1rem 0}\
             th,td{border:1px solid #ccc;padding:.4rem;text-align:left;vertical-align:top}th{background:#f3f3f3}</style>\n",
        );
        out.push_str("</head>\n<body>\n<main>\n");
        out.push_str(&format!("<h1>{}</h1>\n", escape(&self.title)));
        for block in &self.blocks {
            match block {
                Block::Heading(level, text) => {
                    out.push_str(&format!(
                        "<h{level} id=\"{}\">{}</h{level}>\n",
                        slug(text),
                        escape(text)
                    ));
                }
                Block::Paragraph(text) => out.push_str(&format!("<p>{}</p>\n", inline_html(text))),
                Block::List(items) => {
                    out.push_str("<ul>\n");
                    for item in items {
                        out.push_str(&format!("<li>{}</li>\n", inline_html(item)));
                    }
                    out.push_str("</ul>\n");
                }
                Block::Table { header, rows } => {
                    out.push_str("<table>\n<thead><tr>");
                    for h in header {
                        out.push_str(&format!("<th scope=\"col\">{}</th>", escape(h)));
                    }
                    out.push_str("</tr></thead>\n<tbody>\n");
                    for row in rows {
                        out.push_str("<tr>");
                        for c in row {
                            out.push_str(&format!("<td>{}</td>", inline_html(c)));
                        }
                        out.push_str("</tr>\n");
                    }
                    out.push_str("</tbody>\n</table>\n");
                }
            }
        }
        out.push_str("</main>\n</body>\n</html>\n");
        out
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text and turns bare `https://` addresses into links.
fn inline_html(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let trimmed = word.trim_end_matches(['.', ',', ';', ')']);
            if trimmed.starts_with("https://") && trimmed.len() > "https://".len() {
                let rest = word.get(trimmed.len()..).unwrap_or("");
                format!("<a href=\"{0}\">{0}</a>{1}", escape(trimmed), escape(rest))
            } else {
                escape(word)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Output formats for the documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
}

impl Document {
    pub fn write(&self, format: Format) -> String {
        match format {
            Format::Markdown => self.markdown(),
            Format::Html => self.html(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_and_links() {
        let mut doc = Document::new("A <title>");
        doc.para("See https://ico.org.uk. <b>");
        doc.table(&["a|b"], vec![vec!["x|y".into()]]);
        let html = doc.html();
        assert!(html.contains("<title>A &lt;title&gt;</title>"));
        assert!(html.contains("<a href=\"https://ico.org.uk\">https://ico.org.uk</a>. &lt;b&gt;"));
        let md = doc.markdown();
        assert!(md.contains("| a\\|b |"));
        assert!(md.contains("| x\\|y |"));
    }
}

#[cfg(test)]
#[path = "notice_tests.rs"]
mod notice_tests;
