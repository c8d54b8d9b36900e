//! A table of figures as the pages, the JSON API and the CSV downloads send it.

use serde::Serialize;
use serde_json::Value;

/// Rows of one query, columns in the query's order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// From ClickHouse's `JSONCompact` answer: the column names (from `meta`, so a query
    /// that found nothing still has them) and the rows.
    pub fn from_json_compact(text: &str) -> Result<Table, String> {
        #[derive(serde::Deserialize)]
        struct Column {
            name: String,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            meta: Vec<Column>,
            data: Vec<Vec<Value>>,
        }
        let answer: Answer = serde_json::from_str(text)
            .map_err(|e| format!("the answer is not JSONCompact: {e}"))?;
        Ok(Table {
            columns: answer.meta.into_iter().map(|c| c.name).collect(),
            rows: answer.data,
        })
    }

    /// From `JSONEachRow` lines (each an object with the columns in order): tests' tables.
    pub fn from_json_lines(text: &str) -> Result<Table, String> {
        let mut table = Table::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let object: serde_json::Map<String, Value> =
                serde_json::from_str(line).map_err(|e| format!("a row is not JSON: {e}"))?;
            if table.columns.is_empty() {
                table.columns = object.keys().cloned().collect();
            }
            table
                .rows
                .push(object.into_iter().map(|(_, v)| v).collect());
        }
        Ok(table)
    }

    /// A table with no rows and these columns (a query that found nothing still has them).
    pub fn empty(columns: &[&str]) -> Table {
        Table {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The rows whose column `name` equals `value` (as text).
    pub fn rows_where(&self, name: &str, value: &str) -> Vec<&Vec<Value>> {
        let Some(i) = self.column(name) else {
            return Vec::new();
        };
        self.rows.iter().filter(|r| text(&r[i]) == value).collect()
    }

    /// RFC 4180 CSV with a header row. A cell a spreadsheet would run as a formula
    /// (`=`, `+`, `-`, `@` first, and not a number) gets a leading `'`: form and field keys
    /// come from customers' pages.
    pub fn to_csv(&self) -> String {
        let mut out = csv::Writer::from_writer(Vec::new());
        let _ = out.write_record(&self.columns);
        for row in &self.rows {
            let _ = out.write_record(row.iter().map(|v| defuse(text(v))));
        }
        String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
    }
}

/// A cell as text: strings bare, numbers as ClickHouse writes them (a whole float without
/// `.0`), so a download compares equal to the server's own CSV.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", f as i64)
            } else {
                n.to_string()
            }
        }
        other => other.to_string(),
    }
}

fn defuse(cell: String) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && cell.parse::<f64>().is_err() {
        format!("'{cell}")
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compact_answer_keeps_its_columns_even_without_rows() {
        let t = Table::from_json_compact(
            r#"{"meta":[{"name":"form","type":"String"},{"name":"views","type":"UInt64"}],"data":[["a",3]],"rows":1}"#,
        )
        .unwrap();
        assert_eq!(t.columns, ["form", "views"]);
        assert_eq!(t.rows, [vec![Value::from("a"), Value::from(3)]]);
        let empty =
            Table::from_json_compact(r#"{"meta":[{"name":"form","type":"String"}],"data":[]}"#)
                .unwrap();
        assert_eq!((empty.columns.len(), empty.rows.len()), (1, 0));
        assert!(Table::from_json_compact("Code: 60").is_err());
    }

    #[test]
    fn json_lines_keep_the_column_order() {
        let t = Table::from_json_lines("{\"z\":1,\"a\":\"x\"}\n{\"z\":2,\"a\":\"y\"}\n").unwrap();
        assert_eq!(t.columns, ["z", "a"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows_where("a", "y")[0][0], Value::from(2));
        assert!(Table::from_json_lines("nope").is_err());
        assert_eq!(text(&serde_json::json!(3000.0)), "3000");
        assert_eq!(text(&serde_json::json!(2.5)), "2.5");
        assert_eq!(text(&serde_json::json!(-7)), "-7");
        assert_eq!(Table::from_json_lines("").unwrap(), Table::default());
    }

    #[test]
    fn csv_quotes_what_needs_it_and_defuses_formulas() {
        let t = Table::from_json_lines(
            "{\"form\":\"a,b\",\"n\":-3,\"note\":\"=HYPERLINK(1)\"}\n{\"form\":\"say \\\"hi\\\"\",\"n\":1.5,\"note\":\"-x\"}",
        )
        .unwrap();
        assert_eq!(
            t.to_csv(),
            "form,n,note\n\"a,b\",-3,'=HYPERLINK(1)\n\"say \"\"hi\"\"\",1.5,'-x\n"
        );
    }
}
