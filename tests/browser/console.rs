//! The console in Chromium, as a site owner meets it: logged in in one tab, the demo form
//! filled in another; the visit shows at once on the live page (with when its final figures
//! come), then the form, its funnel chart and its field table with the figures the whole
//! pipeline made. A screenshot of the form page goes to `target/test-screenshots/`.

use std::time::{Duration, Instant};

use exatom_e2e::{assert_same_rows, field_csv_of_the_view, poll_until, Console, ConsoleUser};

use crate::world::World;

const OWNER_PASSWORD: &str = "owner-pass-7";

/// A console for the world's site, its owner logged in in the browser, as a person does.
pub(crate) async fn logged_in_owner(world: &World, name: &str) -> Console {
    let registry = std::fs::read_to_string(&world.sites).unwrap();
    let console = Console::start(
        &world.stack,
        name,
        &registry,
        &[ConsoleUser {
            name: "owner",
            password: OWNER_PASSWORD,
            sites: &[&world.site],
            admin: false,
            token: None,
        }],
        &[],
    )
    .await;
    let b = &world.browser;
    b.open(&format!("{}/", console.url), "input[name=user]")
        .await;
    b.type_into("input[name=user]", "owner").await;
    b.type_into("input[name=password]", OWNER_PASSWORD).await;
    b.click("main.login button").await;
    b.find("table#forms").await;
    console
}

pub(crate) async fn owner_sees_the_visit_live_then_its_form() {
    let world = World::start("browser-console").await;
    let console = logged_in_owner(&world, "browser").await;
    let b = &world.browser;
    let site = &world.site;
    let console_tab = b.client.window().await.unwrap();

    // The demo form, in a tab of its own.
    let demo_tab = b.client.new_window(true).await.unwrap().handle;
    b.client.switch_to_window(demo_tab).await.unwrap();
    b.open(&world.demo("form.html"), "#signup").await;
    b.type_into("#full_name", &world.marker("Owner")).await;
    b.type_into("#email", &format!("{}@example.com", world.marker("owner")))
        .await;
    b.click("#next").await;
    b.find("#step-2:not([hidden])").await;
    b.find("#plan").await.select_by_label("Team").await.unwrap();
    b.click("#contact-email").await;
    b.click("#terms").await;
    b.click("#submit").await;
    b.find("#thanks").await;
    let filled = Instant::now();

    // At once: the visit on the live page, and when its final figures come.
    b.client
        .switch_to_window(console_tab.clone())
        .await
        .unwrap();
    let live = format!("{}/sites/{site}/live", console.url);
    let seen = poll_until(Duration::from_secs(30), || async {
        b.client.goto(&live).await.unwrap();
        cells(b, "#live-forms tbody tr")
            .await
            .iter()
            .any(|r| r.first().is_some_and(|f| f == "signup"))
    })
    .await;
    assert!(seen, "the visit is on the live page within 30 s");
    let live_seconds = filled.elapsed().as_secs_f64();
    let forms = cells(b, "#live-forms tbody tr").await;
    let signup = forms.iter().find(|r| r[0] == "signup").unwrap();
    assert_eq!(
        &signup[1..4],
        ["1", "1", "1"],
        "provisional views, starts, submits: {forms:?}"
    );
    let note = b.find("#final-at").await.text().await.unwrap();
    assert!(
        note.contains("Provisional") && note.contains("UTC"),
        "{note}"
    );
    assert!(!cells(b, "#live-events tbody tr").await.is_empty());

    // Then the final figures: the form on the Forms page, its funnel and fields.
    let form_page = format!("{}/sites/{site}/forms/signup", console.url);
    let ready = poll_until(Duration::from_secs(120), || async {
        b.client.goto(&form_page).await.unwrap();
        b.client
            .find(fantoccini::Locator::Css("table#funnel"))
            .await
            .is_ok()
    })
    .await;
    assert!(ready, "the form's final figures within two minutes");
    let final_seconds = filled.elapsed().as_secs_f64();
    let funnel = cells(b, "#funnel tbody tr").await;
    assert_eq!(funnel[0][0], "signup");
    assert_eq!(
        &funnel[0][1..5],
        ["1", "1", "1", "1"],
        "views, starts, submits, conversions"
    );
    b.find("#funnel-chart[data-drawn='1'] canvas").await;
    b.find("#field-chart[data-drawn='1'] canvas").await;
    let fields = cells(b, "#fields tbody tr").await;
    let in_table: Vec<&str> = fields.iter().map(|r| r[0].as_str()).collect();
    // The order of the page (the form's DOM: name, e-mail, plan, contact, notes, terms).
    assert_eq!(
        in_table,
        ["full_name", "email", "plan", "contact", "terms"],
        "the fields in the order of the form"
    );
    let mut names = in_table.clone();
    names.sort_unstable();
    let stored = world
        .query("SELECT arrayStringConcat(groupArray(field), ',') FROM (SELECT field FROM exatom.v_field_daily WHERE site = '{site}' AND form = 'signup' ORDER BY field)")
        .await;
    assert_eq!(
        names.join(","),
        stored,
        "the field table has the stored fields"
    );
    assert!(
        names.contains(&"email") && names.contains(&"plan"),
        "{names:?}"
    );

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/test-screenshots");
    std::fs::create_dir_all(&root).unwrap();
    b.client.set_window_size(1200, 2200).await.unwrap();
    b.client.goto(&form_page).await.unwrap();
    b.find("#field-chart[data-drawn='1'] canvas").await;
    let shot = root.join("console-form-detail.png");
    std::fs::write(&shot, b.client.screenshot().await.unwrap()).unwrap();
    eprintln!("screenshot of the form page: {}", shot.display());

    // The field table's CSV, downloaded as the page links it, equals v_field_daily's rows.
    let today = chrono::Utc::now().date_naive();
    let csv = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then(r => r.text()).then(done);",
            vec![serde_json::json!(format!("/api/sites/{site}/forms/signup/fields?from={today}&to={today}&format=csv"))],
        )
        .await
        .unwrap();
    let expected = field_csv_of_the_view(&world.stack, site, "signup").await;
    assert_same_rows(csv.as_str().unwrap(), &expected);
    eprintln!("visit on the live page after {live_seconds:.1} s, final figures after {final_seconds:.1} s");
    world.browser.close().await;
}

/// The text of each cell of the rows `selector` finds.
async fn cells(b: &crate::chrome::Browser, selector: &str) -> Vec<Vec<String>> {
    let rows = b
        .eval(&format!(
            "return Array.from(document.querySelectorAll({selector:?})).map(r => Array.from(r.cells).map(c => c.textContent.trim()))"
        ))
        .await;
    serde_json::from_value(rows).unwrap_or_default()
}
