//! The rows the organisation's own systems (the policy's datasets) hold
//! about a person, as HTML for the Art. 15 statement's page. The rows can
//! be many, so the page is written piece by piece: a heading for all
//! datasets, one per dataset, then the tables as their segments arrive. A
//! table's rows may come in several segments (the export is stored in
//! parts); consecutive segments of one table continue one HTML table.

use super::{escape, slug};

/// The heading of the datasets' section, said once before the first.
pub fn section_heading() -> String {
    let text = "The data our other systems hold about you";
    format!(
        "<h2 id=\"{}\">{}</h2>\n<p>{}</p>\n",
        slug(text),
        escape(text),
        escape(
            "Each system below is one of our own. Each table shows its fields with the category of information each holds, then every row about you."
        )
    )
}

/// The heading of one dataset, with the system it is on and its row count.
pub fn dataset_heading(dataset: &str, system: &str, rows: u64) -> String {
    let noun = if rows == 1 { "row" } else { "rows" };
    format!(
        "<h3 id=\"dataset-{}\">{} ({})</h3>\n<p>{rows} {noun} found.</p>\n",
        slug(dataset),
        escape(dataset),
        escape(system)
    )
}

/// One dataset's tables, written as their segments come.
#[derive(Debug, Default)]
pub struct Tables {
    /// The table whose HTML is open: its name and (field, category) columns.
    open: Option<(String, Vec<(String, String)>)>,
}

impl Tables {
    /// Appends a segment of `table` to `out`: its rows, after the table's
    /// head unless the segment continues the table open now.
    pub fn segment<'r>(
        &mut self,
        table: &str,
        columns: &[(String, String)],
        rows: impl IntoIterator<Item = &'r [Option<String>]>,
        out: &mut String,
    ) {
        let continues = self
            .open
            .as_ref()
            .is_some_and(|(t, c)| t == table && c.as_slice() == columns);
        if !continues {
            self.close(out);
            out.push_str("<table>\n<caption>");
            out.push_str(&escape(&format!("Table {table}")));
            out.push_str("</caption>\n<thead><tr>");
            for (field, category) in columns {
                out.push_str("<th scope=\"col\">");
                out.push_str(&escape(field));
                out.push_str("<br><small>");
                out.push_str(&escape(category));
                out.push_str("</small></th>");
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            self.open = Some((table.to_string(), columns.to_vec()));
        }
        for row in rows {
            out.push_str("<tr>");
            for value in row {
                out.push_str("<td>");
                if let Some(v) = value {
                    out.push_str(&escape(v));
                }
                out.push_str("</td>");
            }
            out.push_str("</tr>\n");
        }
    }

    /// Closes the open table, if any (at the end of a dataset).
    pub fn close(&mut self, out: &mut String) {
        if self.open.take().is_some() {
            out.push_str("</tbody>\n</table>\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<(String, String)> {
        vec![
            ("id".into(), "account".into()),
            ("note".into(), "orders".into()),
        ]
    }

    #[test]
    fn values_are_escaped_and_a_table_continues_across_segments() {
        let mut out = String::new();
        let mut t = Tables::default();
        let first = [
            Some("1".to_string()),
            Some("<b>\"x\" & 'y'</b>".to_string()),
        ];
        let second = [Some("2".to_string()), None];
        t.segment("orders", &columns(), [first.as_slice()], &mut out);
        t.segment("orders", &columns(), [second.as_slice()], &mut out);
        t.segment("carts", &columns(), [second.as_slice()], &mut out);
        t.close(&mut out);
        assert!(
            out.contains("<td>&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;</td>"),
            "{out}"
        );
        assert!(!out.contains("<b>"), "{out}");
        assert_eq!(out.matches("<table>").count(), 2, "{out}");
        assert_eq!(out.matches("</table>").count(), 2, "{out}");
        assert_eq!(out.matches("<tr><td>").count(), 3, "{out}");
        assert!(out.contains("<caption>Table orders</caption>"), "{out}");
        assert!(out.contains("note<br><small>orders</small>"), "{out}");
        assert!(out.contains("<tr><td>2</td><td></td></tr>"), "{out}");
    }

    #[test]
    fn headings_escape_names() {
        assert_eq!(
            dataset_heading("shop<1>", "postgres", 1),
            "<h3 id=\"dataset-shop-1\">shop&lt;1&gt; (postgres)</h3>\n<p>1 row found.</p>\n"
        );
        assert!(
            section_heading().starts_with("<h2 id=\"the-data-our-other-systems-hold-about-you\">")
        );
    }
}
