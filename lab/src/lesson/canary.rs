//! `canary`: a canary release of one gateway that answers 5xx to 30% of its requests, rolled out through a split
//! route (`upstream = [{ group, weight }, ...]`) by config reloads at 5%, 25%, 50% and 100%. After each step the
//! proxy's own counts (`scalelab_upstream_requests_total` per group) are compared, and the rollout goes on, or
//! rolls back at the first step whose numbers say so (`verdict::canary`).

use serde_json::json;

use super::knobs::{array_at, table_at};
use super::verdict::canary::{
    canary as verdict_of, decide, Answers, Decision, Step, MIN_CANARY_ANSWERS,
};
use super::{Lab, LessonError, Restore, Section, Table};
use crate::bench::build_url;
use crate::scenario::Scenario;

const STABLE: &str = "lesson-stable";
const CANARY: &str = "lesson-canary";
const ROUTE: &str = "lesson-canary";
const PATH: &str = "/lesson-canary";
/// The canary's weight (of 100) at each step of the rollout.
const STEPS: [u32; 4] = [5, 25, 50, 100];
/// The canary gateway's share of 500 answers during the lesson.
const CANARY_ERROR_RATE: f64 = 0.3;

/// Adds (or replaces) the stable and canary groups and the split route, the canary at `weight` of 100.
fn set_split(
    table: &mut toml::Table,
    stable: &[String],
    canary: &str,
    weight: u32,
) -> Result<(), String> {
    let group = |servers: &[String]| {
        let mut group = toml::Table::new();
        let servers = servers
            .iter()
            .map(|addr| {
                let mut server = toml::Table::new();
                server.insert("addr".to_owned(), toml::Value::String(addr.clone()));
                toml::Value::Table(server)
            })
            .collect();
        group.insert("servers".to_owned(), toml::Value::Array(servers));
        // A 500 is an answer and never retried; no retry keeps each request on its side.
        group.insert("retries".to_owned(), toml::Value::Integer(0));
        toml::Value::Table(group)
    };
    let upstreams = table_at(table, "upstreams")?;
    upstreams.insert(STABLE.to_owned(), group(stable));
    upstreams.insert(CANARY.to_owned(), group(&[canary.to_owned()]));
    let target = |name: &str, weight: u32| {
        let mut target = toml::Table::new();
        target.insert("group".to_owned(), toml::Value::String(name.to_owned()));
        target.insert("weight".to_owned(), toml::Value::Integer(i64::from(weight)));
        toml::Value::Table(target)
    };
    let mut route = toml::Table::new();
    route.insert("name".to_owned(), toml::Value::String(ROUTE.to_owned()));
    route.insert("path".to_owned(), toml::Value::String(PATH.to_owned()));
    route.insert("strip_prefix".to_owned(), toml::Value::Boolean(true));
    route.insert(
        "upstream".to_owned(),
        toml::Value::Array(vec![target(STABLE, 100 - weight), target(CANARY, weight)]),
    );
    let routes = array_at(table, "routes")?;
    routes.retain(|r| r.get("name").and_then(toml::Value::as_str) != Some(ROUTE));
    routes.push(toml::Value::Table(route));
    Ok(())
}

/// A group's answers so far, from the proxy's exposition: every `scalelab_upstream_requests_total` of the group,
/// and those with a 5xx code.
fn answers(metrics: &str, group: &str) -> Answers {
    let upstream = format!("upstream=\"{group}\"");
    let mut answers = Answers::default();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("scalelab_upstream_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        if !labels.split(',').any(|label| label == upstream) {
            continue;
        }
        let value = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        answers.total += value;
        if labels.split(',').any(|label| label.starts_with("code=\"5")) {
            answers.errors += value;
        }
    }
    answers
}

fn since(now: Answers, before: Answers) -> Answers {
    Answers {
        total: now.total.saturating_sub(before.total),
        errors: now.errors.saturating_sub(before.errors),
    }
}

/// `canary`.
pub async fn canary(lab: &Lab, restore: &mut Restore) -> Result<Section, LessonError> {
    let port = super::balance::watched(lab)?;
    let canary = lab.knobs.gateway_addr(port);
    let stable: Vec<String> = lab
        .knobs
        .file
        .lab
        .gateways
        .iter()
        .filter(|p| **p != port)
        .map(|p| lab.knobs.gateway_addr(*p))
        .collect();
    if stable.is_empty() {
        return Err(LessonError::Knob(
            "the canary lesson needs two gateways: one stable, one canary".to_owned(),
        ));
    }
    lab.knobs
        .chaos(restore, port, json!({"error_rate": CANARY_ERROR_RATE}))
        .await?;
    let url = build_url(&lab.knobs.proxy(&format!("{PATH}/data")), None, true)?.to_string();
    let mut baseline = None;
    let (mut steps, mut runs) = (Vec::new(), Vec::new());
    for weight in STEPS {
        lab.knobs
            .rewrite_config(restore, |table| set_split(table, &stable, &canary, weight))
            .await?;
        let metrics = lab.knobs.admin_text("/metrics").await?;
        let (canary_before, stable_before) =
            *baseline.get_or_insert((answers(&metrics, CANARY), answers(&metrics, STABLE)));
        let run = lab
            .load(&format!("canary at {weight}%"), &url, |_| {})
            .await?;
        let metrics = lab.knobs.admin_text("/metrics").await?;
        let step = {
            let canary = since(answers(&metrics, CANARY), canary_before);
            let stable = since(answers(&metrics, STABLE), stable_before);
            Step {
                weight,
                canary,
                stable,
                decision: decide(canary, stable),
            }
        };
        println!("step {weight}%: {}", step.decision.label());
        let rolled_back = step.decision == Decision::RollBack;
        steps.push(step);
        runs.push(run);
        if rolled_back {
            // The rollback is a reload too: the canary's weight back to 0.
            lab.knobs
                .rewrite_config(restore, |table| set_split(table, &stable, &canary, 0))
                .await?;
            break;
        }
    }
    let verdict = verdict_of(&steps);
    let condition = format!(
        "A split route {PATH} (a config rewrite, restored afterwards) over group {STABLE} ({}) and group {CANARY} \
         ({canary}), whose gateway answers 500 to {} of its requests (chaos). The canary's weight is reloaded to \
         {} of 100 in turn, the same load runs at each step, and after each one the 5xx share of each group so far \
         (the proxy's scalelab_upstream_requests_total) decides: roll back when the canary's is over twice the \
         stable group's plus two points, with at least {MIN_CANARY_ANSWERS} canary answers and three errors.",
        stable.join(", "),
        super::verdict::pct(CANARY_ERROR_RATE),
        STEPS.map(|w| format!("{w}")).join(", ")
    );
    let mut section = Section::new(Scenario::Canary, condition, runs, verdict)?;
    section.tables.push(Table {
        title: "Rollout steps: answers so far per group".to_owned(),
        header: [
            "canary weight",
            "canary answers",
            "canary 5xx",
            "stable answers",
            "stable 5xx",
            "decision",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: steps
            .iter()
            .map(|step| {
                vec![
                    format!("{}%", step.weight),
                    step.canary.total.to_string(),
                    format!("{:.1}%", step.canary.ratio() * 100.0),
                    step.stable.total.to_string(),
                    format!("{:.1}%", step.stable.ratio() * 100.0),
                    step.decision.label().to_owned(),
                ]
            })
            .collect(),
    });
    section.share_figures()?;
    Ok(section)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_split_is_written_and_replaced_at_each_step() {
        let mut table: toml::Table = "[upstreams.gateways]\nservers = []\n[[routes]]\nname = \"data\"\npath = \"/data\"\nupstream = \"gateways\""
            .parse()
            .unwrap();
        let stable = ["g:1".to_owned(), "g:2".to_owned()];
        set_split(&mut table, &stable, "g:3", 5).unwrap();
        set_split(&mut table, &stable, "g:3", 25).unwrap();
        let routes = table["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 2, "one split route, replaced: {routes:?}");
        let split = routes[1]["upstream"].as_array().unwrap();
        assert_eq!(split[0]["group"].as_str(), Some(STABLE));
        assert_eq!(split[0]["weight"].as_integer(), Some(75));
        assert_eq!(split[1]["weight"].as_integer(), Some(25));
        assert_eq!(
            table["upstreams"][CANARY]["servers"][0]["addr"].as_str(),
            Some("g:3")
        );
        assert_eq!(
            table["upstreams"][STABLE]["servers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn answers_are_read_per_group_from_the_exposition() {
        let metrics = "# HELP scalelab_upstream_requests_total Responses.\n\
            scalelab_upstream_requests_total{code=\"200\",server=\"g:3\",upstream=\"lesson-canary\"} 70\n\
            scalelab_upstream_requests_total{code=\"500\",server=\"g:3\",upstream=\"lesson-canary\"} 30\n\
            scalelab_upstream_requests_total{code=\"200\",server=\"g:1\",upstream=\"lesson-stable\"} 400\n\
            scalelab_upstream_requests_total{code=\"503\",server=\"g:2\",upstream=\"lesson-stable\"} 2\n\
            scalelab_upstream_requests_total{code=\"500\",server=\"g:3\",upstream=\"gateways\"} 9\n";
        assert_eq!(
            answers(metrics, CANARY),
            Answers {
                total: 100,
                errors: 30
            }
        );
        assert_eq!(
            answers(metrics, STABLE),
            Answers {
                total: 402,
                errors: 2
            }
        );
        assert_eq!(
            since(
                Answers {
                    total: 100,
                    errors: 30
                },
                Answers {
                    total: 40,
                    errors: 10
                }
            ),
            Answers {
                total: 60,
                errors: 20
            }
        );
    }
}
