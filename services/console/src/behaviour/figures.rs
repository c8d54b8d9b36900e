//! The behaviour pages' reads from ClickHouse (through the site's own database, as every
//! read of the console), and the pure steps that shape them: a heatmap's device classes and
//! bins from one read, the forms each error's sessions abandoned beside the errors.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::encoder::{text, Table};
use crate::request::Range;
use crate::service::{Arg, Figures, Unavailable};

const HEATMAP_PAGES: &str = include_str!("../sql/heatmap_pages.sql");
const HEATMAP_BINS: &str = include_str!("../sql/heatmap_bins.sql");
const SCROLL_DEPTH: &str = include_str!("../sql/scroll_depth.sql");
const ERRORS: &str = include_str!("../sql/errors.sql");
const ERROR_FORMS: &str = include_str!("../sql/error_forms.sql");

/// Every query of the behaviour pages, for the test that checks their binds.
#[cfg(test)]
pub(crate) const QUERIES: [&str; 5] = [
    HEATMAP_PAGES,
    HEATMAP_BINS,
    SCROLL_DEPTH,
    ERRORS,
    ERROR_FORMS,
];

/// A heatmap's bins as the page shows and the API sends them.
pub const BIN_COLUMNS: [&str; 5] = ["x_bin", "y_bin", "clicks", "rage_clicks", "dead_clicks"];
const DEVICE_COLUMNS: [&str; 2] = ["device_class", "clicks"];

/// One page's heatmap over a range.
#[derive(Debug, Clone, Default)]
pub struct Heatmap {
    /// The site's most clicked pages: page, clicks, rage_clicks, dead_clicks.
    pub pages: Table,
    /// The page drawn: the one asked for, else the most clicked; none when nothing was.
    pub page: Option<String>,
    /// The page's clicks per device class, most first.
    pub devices: Table,
    /// The device class drawn: the one asked for, else the one with most clicks.
    pub device: Option<String>,
    /// Its bins ([`BIN_COLUMNS`]), top to bottom.
    pub bins: Table,
}

impl Figures {
    pub async fn heatmap_pages(&self, site: &str, range: &Range) -> Result<Table, Unavailable> {
        self.table(
            "heatmap_pages",
            HEATMAP_PAGES,
            &Self::site_range(site, range),
        )
        .await
    }

    /// The heatmap of `page` (else the most clicked page) for `device` (else the device
    /// class with most clicks on it).
    pub async fn heatmap(
        &self,
        site: &str,
        range: &Range,
        page: Option<&str>,
        device: Option<&str>,
    ) -> Result<Heatmap, Unavailable> {
        let bins_of = |page: String| async move {
            let mut args = Self::site_range(site, range);
            args.push(("page", Arg::Text(page)));
            self.table("heatmap_bins", HEATMAP_BINS, &args).await
        };
        // A page asked for is read beside the list; the default one only after it.
        let (pages, page, all) = match page {
            Some(page) => {
                let (pages, all) =
                    tokio::try_join!(self.heatmap_pages(site, range), bins_of(page.to_owned()))?;
                (pages, Some(page.to_owned()), all)
            }
            None => {
                let pages = self.heatmap_pages(site, range).await?;
                match pages.rows.first().map(|r| text(&r[0])) {
                    Some(page) => {
                        let all = bins_of(page.clone()).await?;
                        (pages, Some(page), all)
                    }
                    None => (pages, None, Table::default()),
                }
            }
        };
        let devices = devices_of(&all);
        let device = device
            .map(str::to_owned)
            .or_else(|| devices.rows.first().map(|r| text(&r[0])));
        let bins = bins_for(&all, device.as_deref().unwrap_or_default());
        Ok(Heatmap {
            pages,
            page,
            devices,
            device,
            bins,
        })
    }

    /// Per page and device class: views and how many reached each depth.
    pub async fn scroll(&self, site: &str, range: &Range) -> Result<Table, Unavailable> {
        self.table("scroll_depth", SCROLL_DEPTH, &Self::site_range(site, range))
            .await
    }

    /// Per page, message and script: the errors with the forms their sessions abandoned
    /// (`forms_abandoned`), and those forms as a table of their own.
    pub async fn errors(&self, site: &str, range: &Range) -> Result<(Table, Table), Unavailable> {
        let args = Self::site_range(site, range);
        let (mut errors, forms) = tokio::try_join!(
            self.table("errors", ERRORS, &args),
            self.table("error_forms", ERROR_FORMS, &args),
        )?;
        with_forms(&mut errors, &forms);
        Ok((errors, forms))
    }
}

/// A heatmap read's clicks per device class, most first.
pub fn devices_of(all: &Table) -> Table {
    let mut clicks: BTreeMap<String, u64> = BTreeMap::new();
    if let (Some(d), Some(c)) = (all.column("device_class"), all.column("clicks")) {
        for row in &all.rows {
            *clicks.entry(text(&row[d])).or_default() += row[c].as_u64().unwrap_or(0);
        }
    }
    let mut ranked: Vec<(String, u64)> = clicks.into_iter().collect();
    // Stable: classes with as many clicks stay in name order.
    ranked.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let mut table = Table::empty(&DEVICE_COLUMNS);
    table.rows = ranked
        .into_iter()
        .map(|(device, n)| vec![Value::from(device), Value::from(n)])
        .collect();
    table
}

/// A heatmap read's bins of one device class, in [`BIN_COLUMNS`].
pub fn bins_for(all: &Table, device: &str) -> Table {
    let mut table = Table::empty(&BIN_COLUMNS);
    let Some(d) = all.column("device_class") else {
        return table;
    };
    let columns: Vec<Option<usize>> = BIN_COLUMNS.iter().map(|c| all.column(c)).collect();
    table.rows = all
        .rows
        .iter()
        .filter(|r| text(&r[d]) == device)
        .map(|r| {
            columns
                .iter()
                .map(|i| i.map_or(Value::from(0), |i| r[i].clone()))
                .collect()
        })
        .collect();
    table
}

/// Adds `forms_abandoned` to each error: the forms (`[{"form", "sessions"}]`, most
/// sessions first) that the sessions which hit it abandoned.
pub fn with_forms(errors: &mut Table, forms: &Table) {
    let key = |row: &[Value]| (text(&row[0]), text(&row[1]), text(&row[2]));
    let mut by_error: HashMap<(String, String, String), Vec<Value>> = HashMap::new();
    if let (Some(f), Some(s)) = (forms.column("form"), forms.column("sessions")) {
        for row in &forms.rows {
            by_error
                .entry(key(row))
                .or_default()
                .push(json!({ "form": row[f], "sessions": row[s] }));
        }
    }
    errors.columns.push("forms_abandoned".into());
    for row in &mut errors.rows {
        let forms = by_error.remove(&key(row)).unwrap_or_default();
        row.push(Value::Array(forms));
    }
}
