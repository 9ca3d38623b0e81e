//! `runs/search`: filters on metrics, params, tags, run attributes and datasets, and order_by
//! on metrics, params, tags and attributes (MLflow `SearchUtils`).

use super::syntax::{
    Comparison, StrValue, Value, entity_string, integer, invalid_comparator, metric_number, num_op, parse_comparisons,
    parse_order_by_clause, quoted_string, set_repr, str_cond, str_op,
};
use super::{FilterError, NumOp, OrderBy, StrCond, StrOp};

/// A parsed `runs/search` filter: every clause must hold. Empty matches every run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunFilter(pub Vec<RunClause>);

/// One condition of a run filter.
///
/// MLflow compares against the *latest* value of a metric, and a clause on a metric, param or
/// tag only matches runs that have that key (`tags.x != 'a'` does not match a run without
/// tag `x`).
#[derive(Debug, Clone, PartialEq)]
pub enum RunClause {
    /// `metrics.<key> <op> <number>`.
    Metric { key: String, op: NumOp, value: f64 },
    /// `params.<key> <op> '<string>'`.
    Param { key: String, op: StrOp, value: String },
    /// `tags.<key> <op> '<string>'`.
    Tag { key: String, op: StrOp, value: String },
    /// A string attribute (`run_id`, `run_name`, `status`, `user_id`, `artifact_uri`). Only
    /// `RunAttr::RunId` ever carries [`StrCond::In`] or [`StrCond::NotIn`]. MLflow's SQL store
    /// answers `run_name` from the `mlflow.runName` tag.
    StrAttribute { attr: RunAttr, cond: StrCond },
    /// A time attribute (`start_time` or `end_time`, in epoch milliseconds).
    TimeAttribute { attr: RunAttr, op: NumOp, value: i64 },
    /// `datasets.<field> <op> <value>` over the run's dataset inputs; lists allowed.
    Dataset { field: DatasetField, cond: StrCond },
}

/// A run attribute usable in filters and order_by. MLflow's aliases are resolved: `created`
/// and `Created` are `StartTime`, `run name`, `Run name` and `Run Name` are `RunName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunAttr {
    RunId,
    RunName,
    Status,
    UserId,
    ArtifactUri,
    StartTime,
    EndTime,
}

impl RunAttr {
    /// MLflow's name for the attribute (`run_id`, `start_time`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RunAttr::RunId => "run_id",
            RunAttr::RunName => "run_name",
            RunAttr::Status => "status",
            RunAttr::UserId => "user_id",
            RunAttr::ArtifactUri => "artifact_uri",
            RunAttr::StartTime => "start_time",
            RunAttr::EndTime => "end_time",
        }
    }

    /// Whether the attribute is a timestamp compared with numbers.
    pub fn is_time(self) -> bool {
        matches!(self, RunAttr::StartTime | RunAttr::EndTime)
    }

    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "run_id" => RunAttr::RunId,
            "run_name" | "run name" | "Run name" | "Run Name" => RunAttr::RunName,
            "status" => RunAttr::Status,
            "user_id" => RunAttr::UserId,
            "artifact_uri" => RunAttr::ArtifactUri,
            "start_time" | "created" | "Created" => RunAttr::StartTime,
            "end_time" => RunAttr::EndTime,
            _ => return None,
        })
    }
}

/// What a `datasets.` clause looks at: the dataset's name or digest, or the `mlflow.data.context`
/// tag of the run's input (`training`, `eval`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetField {
    Name,
    Digest,
    Context,
}

/// What a run order_by clause sorts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RunOrderKey {
    Metric(String),
    Param(String),
    Tag(String),
    Attribute(RunAttr),
}

/// MLflow's `RunInfo.get_searchable_attributes()` plus its aliases.
const FILTER_ATTRIBUTE_KEYS: &[&str] = &[
    "artifact_uri",
    "end_time",
    "run_id",
    "run_name",
    "start_time",
    "status",
    "user_id",
    "created",
    "Created",
    "run name",
    "Run name",
    "Run Name",
];
/// MLflow's `RunInfo.get_orderable_attributes()` plus the `created` aliases.
const ORDER_ATTRIBUTE_KEYS: &[&str] =
    &["artifact_uri", "end_time", "run_id", "run_name", "start_time", "status", "user_id", "created", "Created"];
const DATASET_KEYS: &[&str] = &["name", "digest", "context"];
const METRIC_OPS: &[&str] = &["=", "!=", ">", ">=", "<", "<="];
const PARAM_TAG_OPS: &[&str] = &["=", "!=", "LIKE", "ILIKE"];
const STRING_ATTRIBUTE_OPS: &[&str] = &["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"];

#[derive(Clone, Copy)]
enum Entity {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

/// MLflow's `_valid_entity_type`: the prefix before the first dot. No prefix is an attribute.
fn entity(prefix: Option<&str>) -> Result<Entity, FilterError> {
    Ok(match prefix {
        None => Entity::Attribute,
        Some("metric" | "metrics") => Entity::Metric,
        Some("parameter" | "parameters" | "param" | "params") => Entity::Param,
        Some("tag" | "tags") => Entity::Tag,
        Some("attribute" | "attributes" | "attr" | "run") => Entity::Attribute,
        Some("dataset" | "datasets") => Entity::Dataset,
        Some(other) => {
            return Err(FilterError::new(format!(
                "Invalid entity type '{other}'. Valid values are ['metric', 'parameter', 'tag', \
                 'attribute', 'dataset']"
            )));
        }
    })
}

fn attribute(key: &str, valid: &[&str]) -> Result<RunAttr, FilterError> {
    valid.contains(&key).then(|| RunAttr::from_key(key)).flatten().ok_or_else(|| {
        FilterError::new(format!("Invalid attribute key '{key}' specified. Valid keys are '{}'", set_repr(valid)))
    })
}

fn dataset_field(key: &str) -> Result<DatasetField, FilterError> {
    Ok(match key {
        "name" => DatasetField::Name,
        "digest" => DatasetField::Digest,
        "context" => DatasetField::Context,
        _ => {
            return Err(FilterError::new(format!(
                "Invalid dataset key '{key}' specified. Valid keys are '{}'",
                set_repr(DATASET_KEYS)
            )));
        }
    })
}

/// Parses a `runs/search` filter such as
/// ``metrics.acc > 0.9 AND params.model = 'cnn' AND tags.`mlflow.runName` LIKE 'exp-%'``.
/// Blank input gives an empty filter.
pub fn parse_run_filter(filter: &str) -> Result<RunFilter, FilterError> {
    let clauses = parse_comparisons(filter)?.iter().map(clause).collect::<Result<_, _>>()?;
    Ok(RunFilter(clauses))
}

/// Checks in MLflow's order: the identifier, then the value's type, then the comparator.
fn clause(cmp: &Comparison<'_>) -> Result<RunClause, FilterError> {
    let (prefix, key) = cmp.ident.split();
    let op = cmp.op.as_str();
    match entity(prefix)? {
        Entity::Metric => {
            let value = metric_number(&cmp.value)?;
            let op = num_op(op).ok_or_else(|| invalid_comparator(op, METRIC_OPS))?;
            Ok(RunClause::Metric { key, op, value })
        }
        entity @ (Entity::Param | Entity::Tag) => {
            let is_param = matches!(entity, Entity::Param);
            let value = entity_string(&cmp.value, if is_param { "parameter" } else { "tag" })?;
            let op = str_op(op).ok_or_else(|| invalid_comparator(op, PARAM_TAG_OPS))?;
            Ok(if is_param { RunClause::Param { key, op, value } } else { RunClause::Tag { key, op, value } })
        }
        Entity::Attribute => {
            let attr = attribute(&key, FILTER_ATTRIBUTE_KEYS)?;
            if attr.is_time() {
                let value = integer(&cmp.value, &key)?;
                let op = num_op(op).ok_or_else(|| invalid_comparator(op, METRIC_OPS))?;
                return Ok(RunClause::TimeAttribute { attr, op, value });
            }
            let value = match &cmp.value {
                Value::List { items, .. } if attr == RunAttr::RunId => StrValue::Many(items.clone()?),
                Value::List { .. } => {
                    return Err(FilterError::new(
                        "Only the 'run_id' attribute supports comparison with a list of quoted \
                         string values.",
                    ));
                }
                Value::Number { raw } => {
                    return Err(FilterError::new(format!(
                        "Expected a quoted string value for attributes. Got value {raw}"
                    )));
                }
                other => StrValue::One(quoted_string(other)?),
            };
            if !STRING_ATTRIBUTE_OPS.contains(&op) {
                return Err(invalid_comparator(op, STRING_ATTRIBUTE_OPS));
            }
            let cond = str_cond(op, value, cmp.value.raw())?;
            Ok(RunClause::StrAttribute { attr, cond })
        }
        Entity::Dataset => {
            let field = dataset_field(&key)?;
            let value = match &cmp.value {
                Value::List { items, .. } => StrValue::Many(items.clone()?),
                Value::Number { raw } => {
                    return Err(FilterError::new(format!(
                        "Expected a quoted string value for dataset attributes. Got value {raw}"
                    )));
                }
                other => StrValue::One(quoted_string(other)?),
            };
            if !STRING_ATTRIBUTE_OPS.contains(&op) {
                return Err(invalid_comparator(op, STRING_ATTRIBUTE_OPS));
            }
            let cond = str_cond(op, value, cmp.value.raw())?;
            Ok(RunClause::Dataset { field, cond })
        }
    }
}

/// Parses one `runs/search` order_by clause such as `metrics.acc DESC`, `params.model`,
/// ``tags.`mlflow.runName` ASC`` or `start_time`. Without a direction it is ascending.
pub fn parse_run_order_by(clause: &str) -> Result<OrderBy<RunOrderKey>, FilterError> {
    let (ident, ascending) = parse_order_by_clause(clause)?;
    let (prefix, key) = ident.split();
    let key = match entity(prefix)? {
        Entity::Metric => RunOrderKey::Metric(key),
        Entity::Param => RunOrderKey::Param(key),
        Entity::Tag => RunOrderKey::Tag(key),
        Entity::Attribute => RunOrderKey::Attribute(attribute(&key, ORDER_ATTRIBUTE_KEYS)?),
        Entity::Dataset => {
            dataset_field(&key)?;
            return Err(FilterError::new("Invalid identifier type 'dataset'"));
        }
    };
    Ok(OrderBy { key, ascending })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(filter: &str) -> RunClause {
        let RunFilter(mut clauses) = parse_run_filter(filter).unwrap();
        assert_eq!(clauses.len(), 1, "{filter}");
        clauses.remove(0)
    }

    fn err(filter: &str) -> String {
        parse_run_filter(filter).unwrap_err().message().to_owned()
    }

    fn metric(key: &str, op: NumOp, value: f64) -> RunClause {
        RunClause::Metric { key: key.into(), op, value }
    }

    fn param(key: &str, op: StrOp, value: &str) -> RunClause {
        RunClause::Param { key: key.into(), op, value: value.into() }
    }

    fn tag(key: &str, op: StrOp, value: &str) -> RunClause {
        RunClause::Tag { key: key.into(), op, value: value.into() }
    }

    fn str_attr(attr: RunAttr, op: StrOp, value: &str) -> RunClause {
        RunClause::StrAttribute { attr, cond: StrCond::Compare { op, value: value.into() } }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    // --- The examples from MLFLOW_API.md's "Filter grammar needed". ---

    #[test]
    fn metric_greater_than_decimal() {
        assert_eq!(one("metrics.x > 0.5"), metric("x", NumOp::Gt, 0.5));
    }

    #[test]
    fn param_equals_single_quoted_string() {
        assert_eq!(one("params.lr = '0.01'"), param("lr", StrOp::Eq, "0.01"));
    }

    #[test]
    fn param_in_list_is_rejected() {
        assert_eq!(
            err("params.lr IN ('0.01', '0.1')"),
            "Expected a quoted string value for parameter (e.g. 'my-value'). Got value \
             ('0.01', '0.1')"
        );
    }

    #[test]
    fn backticked_tag_key_with_like_pattern() {
        assert_eq!(one("tags.`mlflow.runName` LIKE 'x%'"), tag("mlflow.runName", StrOp::Like, "x%"));
    }

    #[test]
    fn ilike_on_tag() {
        assert_eq!(one("tags.team ILIKE '%ML%'"), tag("team", StrOp::ILike, "%ML%"));
    }

    #[test]
    fn attribute_status_equals() {
        assert_eq!(one("attributes.status = 'FAILED'"), str_attr(RunAttr::Status, StrOp::Eq, "FAILED"));
    }

    #[test]
    fn attribute_run_name() {
        assert_eq!(one("attributes.run_name = 'my-run'"), str_attr(RunAttr::RunName, StrOp::Eq, "my-run"));
    }

    #[test]
    fn attribute_run_id_in_list() {
        assert_eq!(
            one("attributes.run_id IN ('a','b')"),
            RunClause::StrAttribute { attr: RunAttr::RunId, cond: StrCond::In(strings(&["a", "b"])) }
        );
    }

    #[test]
    fn and_is_case_insensitive() {
        let RunFilter(clauses) =
            parse_run_filter("metrics.a > 1 and metrics.b < 2 AnD metrics.c = 3 AND metrics.d != 4").unwrap();
        assert_eq!(
            clauses,
            vec![
                metric("a", NumOp::Gt, 1.0),
                metric("b", NumOp::Lt, 2.0),
                metric("c", NumOp::Eq, 3.0),
                metric("d", NumOp::Ne, 4.0),
            ]
        );
    }

    #[test]
    fn backticked_keys_may_hold_dots_slashes_and_spaces() {
        assert_eq!(one("metrics.`val/loss.avg` <= 0.1"), metric("val/loss.avg", NumOp::Le, 0.1));
        assert_eq!(one("params.`my param` = 'v'"), param("my param", StrOp::Eq, "v"));
    }

    #[test]
    fn unquoted_dotted_tag_key() {
        assert_eq!(one("tags.mlflow.parentRunId = '5a8f2b3c'"), tag("mlflow.parentRunId", StrOp::Eq, "5a8f2b3c"));
    }

    #[test]
    fn registry_style_prompt_tag_filter_parses_for_runs_too() {
        assert_eq!(one("tag.`mlflow.prompt.is_prompt` != 'true'"), tag("mlflow.prompt.is_prompt", StrOp::Ne, "true"));
    }

    // --- MLflow documentation examples and quoting variants. ---

    #[test]
    fn mlflow_docs_example_with_double_quotes_and_lowercase_and() {
        let RunFilter(clauses) = parse_run_filter(
            r#"params.model = "LogisticRegression" and params.lambda = "0.001" and metrics.error <= 0.05"#,
        )
        .unwrap();
        assert_eq!(
            clauses,
            vec![
                param("model", StrOp::Eq, "LogisticRegression"),
                param("lambda", StrOp::Eq, "0.001"),
                metric("error", NumOp::Le, 0.05),
            ]
        );
    }

    #[test]
    fn double_quoted_keys_with_special_characters() {
        assert_eq!(one(r#"params."model-type" = 'cnn'"#), param("model-type", StrOp::Eq, "cnn"));
        assert_eq!(one(r#"metrics."error rate" < 0.2"#), metric("error rate", NumOp::Lt, 0.2));
    }

    #[test]
    fn key_starting_with_a_digit() {
        assert_eq!(one("metrics.1st_epoch_loss > 1"), metric("1st_epoch_loss", NumOp::Gt, 1.0));
        assert_eq!(one("metrics.`2nd` > 1"), metric("2nd", NumOp::Gt, 1.0));
    }

    #[test]
    fn string_values_resolve_doubled_and_escaped_quotes() {
        assert_eq!(one("tags.note = 'it''s'"), tag("note", StrOp::Eq, "it's"));
        assert_eq!(one(r"tags.note = 'it\'s'"), tag("note", StrOp::Eq, "it's"));
        assert_eq!(one(r#"tags.note = "say ""hi""""#), tag("note", StrOp::Eq, r#"say "hi""#));
    }

    #[test]
    fn like_patterns_are_kept_verbatim() {
        assert_eq!(one(r"params.p LIKE '50\%_x'"), param("p", StrOp::Like, r"50\%_x"));
    }

    #[test]
    fn unicode_keys_and_values() {
        assert_eq!(one("tags.équipe = '機械学習 🦀'"), tag("équipe", StrOp::Eq, "機械学習 🦀"));
    }

    #[test]
    fn whitespace_around_comparators_is_optional() {
        assert_eq!(one("metrics.x>=-1"), metric("x", NumOp::Ge, -1.0));
        assert_eq!(one("params.a='b'"), param("a", StrOp::Eq, "b"));
        assert_eq!(one("  metrics.x   <   3  "), metric("x", NumOp::Lt, 3.0));
    }

    #[test]
    fn entity_type_may_be_backticked() {
        assert_eq!(one("`metrics`.acc > 1"), metric("acc", NumOp::Gt, 1.0));
    }

    // --- Every entity type and its aliases. ---

    #[test]
    fn entity_type_aliases() {
        assert_eq!(one("metric.a = 1"), metric("a", NumOp::Eq, 1.0));
        for prefix in ["param", "params", "parameter", "parameters"] {
            assert_eq!(one(&format!("{prefix}.a = 'v'")), param("a", StrOp::Eq, "v"), "{prefix}");
        }
        assert_eq!(one("tag.a = 'v'"), tag("a", StrOp::Eq, "v"));
        for prefix in ["attribute", "attributes", "attr", "run"] {
            assert_eq!(
                one(&format!("{prefix}.status = 'RUNNING'")),
                str_attr(RunAttr::Status, StrOp::Eq, "RUNNING"),
                "{prefix}"
            );
        }
        for prefix in ["dataset", "datasets"] {
            assert_eq!(
                one(&format!("{prefix}.name = 'iris'")),
                RunClause::Dataset {
                    field: DatasetField::Name,
                    cond: StrCond::Compare { op: StrOp::Eq, value: "iris".into() }
                },
                "{prefix}"
            );
        }
    }

    #[test]
    fn bare_identifier_is_an_attribute() {
        assert_eq!(one("status = 'FINISHED'"), str_attr(RunAttr::Status, StrOp::Eq, "FINISHED"));
        assert_eq!(
            one("start_time > 5"),
            RunClause::TimeAttribute { attr: RunAttr::StartTime, op: NumOp::Gt, value: 5 }
        );
    }

    #[test]
    fn every_string_attribute_is_accepted() {
        for (key, attr) in [
            ("run_id", RunAttr::RunId),
            ("run_name", RunAttr::RunName),
            ("status", RunAttr::Status),
            ("user_id", RunAttr::UserId),
            ("artifact_uri", RunAttr::ArtifactUri),
        ] {
            assert_eq!(one(&format!("attributes.{key} != 'v'")), str_attr(attr, StrOp::Ne, "v"));
        }
    }

    #[test]
    fn attribute_aliases_resolve() {
        assert_eq!(
            one("attributes.created >= 10"),
            RunClause::TimeAttribute { attr: RunAttr::StartTime, op: NumOp::Ge, value: 10 }
        );
        assert_eq!(
            one("attributes.Created < 10"),
            RunClause::TimeAttribute { attr: RunAttr::StartTime, op: NumOp::Lt, value: 10 }
        );
        assert_eq!(one("attributes.`Run Name` LIKE 'a%'"), str_attr(RunAttr::RunName, StrOp::Like, "a%"));
    }

    #[test]
    fn time_attributes_take_integers_including_integral_exponents() {
        assert_eq!(
            one("attributes.end_time <= 1700000000000"),
            RunClause::TimeAttribute { attr: RunAttr::EndTime, op: NumOp::Le, value: 1_700_000_000_000 }
        );
        assert_eq!(
            one("attributes.start_time > 1.7e12"),
            RunClause::TimeAttribute { attr: RunAttr::StartTime, op: NumOp::Gt, value: 1_700_000_000_000 }
        );
    }

    #[test]
    fn dataset_fields_and_lists() {
        assert_eq!(
            one("datasets.digest IN ('abc', 'def')"),
            RunClause::Dataset { field: DatasetField::Digest, cond: StrCond::In(strings(&["abc", "def"])) }
        );
        assert_eq!(
            one("dataset.context NOT IN ('eval')"),
            RunClause::Dataset { field: DatasetField::Context, cond: StrCond::NotIn(strings(&["eval"])) }
        );
        assert_eq!(
            one("datasets.name ILIKE 'ir%'"),
            RunClause::Dataset {
                field: DatasetField::Name,
                cond: StrCond::Compare { op: StrOp::ILike, value: "ir%".into() }
            }
        );
    }

    // --- Every comparator per type. ---

    #[test]
    fn every_numeric_comparator_on_metrics() {
        for (text, op) in [
            ("=", NumOp::Eq),
            ("!=", NumOp::Ne),
            (">", NumOp::Gt),
            (">=", NumOp::Ge),
            ("<", NumOp::Lt),
            ("<=", NumOp::Le),
        ] {
            assert_eq!(one(&format!("metrics.m {text} 2")), metric("m", op, 2.0), "{text}");
        }
    }

    #[test]
    fn every_string_comparator_on_params_and_tags() {
        for (text, op) in [("=", StrOp::Eq), ("!=", StrOp::Ne), ("LIKE", StrOp::Like), ("ilike", StrOp::ILike)] {
            assert_eq!(one(&format!("params.p {text} 'v'")), param("p", op, "v"), "{text}");
            assert_eq!(one(&format!("tags.t {text} 'v'")), tag("t", op, "v"), "{text}");
        }
    }

    #[test]
    fn run_id_not_in_list_and_single_item_list() {
        assert_eq!(
            one("attributes.run_id NOT IN ('a')"),
            RunClause::StrAttribute { attr: RunAttr::RunId, cond: StrCond::NotIn(strings(&["a"])) }
        );
    }

    #[test]
    fn numeric_literal_forms() {
        assert_eq!(one("metrics.m > -0.5"), metric("m", NumOp::Gt, -0.5));
        assert_eq!(one("metrics.m > .5"), metric("m", NumOp::Gt, 0.5));
        assert_eq!(one("metrics.m > 1e-3"), metric("m", NumOp::Gt, 1e-3));
        assert_eq!(one("metrics.m > 2.5E+2"), metric("m", NumOp::Gt, 250.0));
        assert_eq!(one("metrics.m > 7"), metric("m", NumOp::Gt, 7.0));
    }

    #[test]
    fn blank_filter_is_empty() {
        assert_eq!(parse_run_filter("").unwrap(), RunFilter::default());
        assert_eq!(parse_run_filter("   ").unwrap(), RunFilter::default());
    }

    // --- Errors. ---

    #[test]
    fn unknown_entity_type_is_rejected() {
        assert_eq!(
            err("metricz.acc > 1"),
            "Invalid entity type 'metricz'. Valid values are ['metric', 'parameter', 'tag', \
             'attribute', 'dataset']"
        );
    }

    #[test]
    fn entity_types_are_case_sensitive_like_mlflow() {
        assert!(err("Metrics.acc > 1").starts_with("Invalid entity type 'Metrics'"));
    }

    #[test]
    fn unknown_attribute_is_rejected() {
        let message = err("attributes.lifecycle_stage = 'active'");
        assert!(message.starts_with("Invalid attribute key 'lifecycle_stage' specified. Valid keys are"), "{message}");
        assert!(message.contains("'run_id'"), "{message}");
        assert!(err("bogus = 'x'").starts_with("Invalid attribute key 'bogus' specified."));
    }

    #[test]
    fn unknown_dataset_key_is_rejected() {
        assert_eq!(
            err("datasets.source = 'x'"),
            "Invalid dataset key 'source' specified. Valid keys are '{'context', 'digest', 'name'}'"
        );
    }

    #[test]
    fn string_comparator_on_metric_is_rejected() {
        assert_eq!(
            err("metrics.acc LIKE 1"),
            "Invalid comparator 'LIKE' not one of '{'!=', '<', '<=', '=', '>', '>='}'"
        );
    }

    #[test]
    fn numeric_comparator_on_param_is_rejected() {
        assert_eq!(err("params.lr > '0.1'"), "Invalid comparator '>' not one of '{'!=', '=', 'ILIKE', 'LIKE'}'");
    }

    #[test]
    fn unsupported_operators_are_rejected() {
        assert!(err("metrics.a <> 1").starts_with("Invalid comparator '<>' not one of"));
        assert!(err("metrics.a == 1").starts_with("Invalid comparator '==' not one of"));
        assert!(err("tags.a NOT LIKE 'x'").starts_with("Invalid comparator 'NOT LIKE' not one of"));
        assert!(err("attributes.status ~ 'x'").starts_with("Invalid comparator '~' not one of"));
        assert!(err("attributes.start_time LIKE 1").starts_with("Invalid comparator 'LIKE'"));
    }

    #[test]
    fn string_value_for_metric_is_rejected() {
        assert_eq!(err("metrics.acc > 'high'"), "Expected numeric value type for metric. Found 'high'");
        assert_eq!(err("metrics.acc > NaN"), "Expected numeric value type for metric. Found NaN");
        assert_eq!(err("metrics.acc > 0x1F"), "Expected numeric value type for metric. Found 0x1F");
    }

    #[test]
    fn unquoted_string_value_is_rejected() {
        assert_eq!(
            err("params.model = cnn"),
            "Parameter value is either not quoted or unidentified quote types used for string \
             value cnn. Use either single or double quotes."
        );
        assert!(err("attributes.status = FAILED").starts_with("Parameter value is either not quoted"));
    }

    #[test]
    fn backtick_quoted_value_is_rejected() {
        assert!(err("tags.a = `b`").contains("unidentified quote types used for string value `b`"));
    }

    #[test]
    fn numeric_value_for_param_is_rejected() {
        assert_eq!(
            err("params.lr = 0.01"),
            "Expected a quoted string value for parameter (e.g. 'my-value'). Got value 0.01"
        );
        assert_eq!(err("tags.n = 3"), "Expected a quoted string value for tag (e.g. 'my-value'). Got value 3");
        assert_eq!(err("attributes.status = 3"), "Expected a quoted string value for attributes. Got value 3");
        assert_eq!(err("datasets.name = 3"), "Expected a quoted string value for dataset attributes. Got value 3");
    }

    #[test]
    fn string_value_for_time_attribute_is_rejected() {
        assert_eq!(
            err("attributes.start_time > '5'"),
            "Expected numeric value type for numeric attribute: start_time. Found '5'"
        );
        assert_eq!(
            err("attributes.start_time > 1.5"),
            "Expected an integer value for numeric attribute: start_time. Found 1.5"
        );
    }

    #[test]
    fn lists_only_for_run_id_among_attributes() {
        assert_eq!(
            err("attributes.status IN ('FAILED')"),
            "Only the 'run_id' attribute supports comparison with a list of quoted string values."
        );
        assert_eq!(err("metrics.acc IN (1)"), "Expected numeric value type for metric. Found (1)");
    }

    #[test]
    fn in_needs_a_list_and_a_list_needs_in() {
        assert!(err("attributes.run_id IN 'a'").starts_with("Comparator 'IN' expects a list"));
        assert!(err("attributes.run_id = ('a')").starts_with("Comparator '=' cannot be used with a list"));
    }

    #[test]
    fn malformed_lists_are_rejected_with_mlflow_messages() {
        assert_eq!(
            err("attributes.run_id IN ()"),
            "While parsing a list in the query, expected a non-empty list of string values, but \
             got empty list"
        );
        assert_eq!(
            err("attributes.run_id IN (1, 2)"),
            "While parsing a list in the query, expected string value, punctuation, or \
             whitespace, but got different type in list: (1, 2)"
        );
        assert_eq!(
            err("attributes.run_id IN ('a' 'b')"),
            "While parsing a list in the query, expected a non-empty list of string values, but \
             got ill-formed list."
        );
        assert!(err("attributes.run_id IN ('a',,)").ends_with("got ill-formed list."));
        assert!(err("attributes.run_id IN ('a'").starts_with("Invalid clause(s) in filter string"));
    }

    #[test]
    fn missing_value_is_rejected() {
        assert_eq!(err("metrics.acc >"), "Invalid clause(s) in filter string: 'metrics.acc >'");
        assert_eq!(err("params.a = AND metrics.b > 1"), "Invalid clause(s) in filter string: 'params.a ='");
    }

    #[test]
    fn missing_comparator_is_rejected() {
        assert_eq!(err("metrics.acc"), "Invalid clause(s) in filter string: 'metrics.acc'");
        assert_eq!(err("metrics.acc 0.5"), "Invalid clause(s) in filter string: 'metrics.acc 0.5'");
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert_eq!(err("metrics.acc > 0.5 extra"), "Invalid clause(s) in filter string: 'extra'");
        assert_eq!(err("metrics.acc > 0.5 params.a = 'b'"), "Invalid clause(s) in filter string: 'params.a = 'b''");
        assert_eq!(err("metrics.acc > 0.5;"), "Invalid clause(s) in filter string: ';'");
    }

    #[test]
    fn or_is_rejected_with_a_hint() {
        assert_eq!(
            err("metrics.a > 1 OR metrics.b > 2"),
            "Invalid clause(s) in filter string: 'OR metrics.b > 2'. OR is not supported; \
             combine conditions with AND"
        );
        assert!(err("metrics.a > 1 or metrics.b > 2").contains("OR is not supported"));
    }

    #[test]
    fn parentheses_around_clauses_are_rejected() {
        assert!(err("(metrics.a > 1)").starts_with("Invalid clause(s) in filter string: '(metrics.a > 1)'"));
    }

    #[test]
    fn is_null_is_not_supported_like_mlflow() {
        assert_eq!(err("tags.a IS NULL"), "Invalid clause(s) in filter string: 'tags.a IS NULL'");
    }

    #[test]
    fn unterminated_quotes_are_rejected() {
        assert!(err("params.a = 'b").contains("unterminated ' quote starting at character 12"));
        assert!(err("tags.`a = 'b'").contains("unterminated ` quote"));
    }

    #[test]
    fn whitespace_inside_identifier_is_rejected() {
        assert!(err("metrics. acc > 1").starts_with("Invalid clause(s) in filter string"));
        assert!(err("metrics .acc > 1").starts_with("Invalid clause(s) in filter string"));
    }

    // --- order_by. ---

    fn order(clause: &str) -> OrderBy<RunOrderKey> {
        parse_run_order_by(clause).unwrap()
    }

    #[test]
    fn order_by_metric_desc() {
        assert_eq!(order("metrics.acc DESC"), OrderBy { key: RunOrderKey::Metric("acc".into()), ascending: false });
    }

    #[test]
    fn order_by_param_asc() {
        assert_eq!(order("params.model ASC"), OrderBy { key: RunOrderKey::Param("model".into()), ascending: true });
    }

    #[test]
    fn order_by_attribute_defaults_to_ascending() {
        assert_eq!(
            order("attributes.start_time"),
            OrderBy { key: RunOrderKey::Attribute(RunAttr::StartTime), ascending: true }
        );
        assert_eq!(
            order("start_time desc"),
            OrderBy { key: RunOrderKey::Attribute(RunAttr::StartTime), ascending: false }
        );
        assert_eq!(
            order("created DeSc"),
            OrderBy { key: RunOrderKey::Attribute(RunAttr::StartTime), ascending: false }
        );
    }

    #[test]
    fn order_by_backticked_and_dotted_tag_keys() {
        assert_eq!(
            order("tags.`mlflow.runName` DESC"),
            OrderBy { key: RunOrderKey::Tag("mlflow.runName".into()), ascending: false }
        );
        assert_eq!(
            order("tags.mlflow.runName"),
            OrderBy { key: RunOrderKey::Tag("mlflow.runName".into()), ascending: true }
        );
        assert_eq!(
            order(r#"metrics."error rate" asc"#),
            OrderBy { key: RunOrderKey::Metric("error rate".into()), ascending: true }
        );
    }

    #[test]
    fn order_by_rejects_bad_direction() {
        assert_eq!(
            parse_run_order_by("metrics.acc UP").unwrap_err().message(),
            "Invalid ordering key in order_by clause 'metrics.acc UP'."
        );
    }

    #[test]
    fn order_by_rejects_extra_tokens_and_empty_input() {
        for clause in ["metrics.acc DESC extra", "", "metrics.acc, params.b", "metrics.acc >", "(x)"] {
            assert_eq!(
                parse_run_order_by(clause).unwrap_err().message(),
                format!("Invalid order_by clause '{clause}'. Could not be parsed."),
                "{clause}"
            );
        }
    }

    #[test]
    fn order_by_rejects_unknown_entities_and_attributes() {
        assert!(parse_run_order_by("foo.bar").unwrap_err().message().starts_with("Invalid entity type 'foo'"));
        assert_eq!(
            parse_run_order_by("attributes.run name").unwrap_err().message(),
            "Invalid ordering key in order_by clause 'attributes.run name'."
        );
        assert!(
            parse_run_order_by("attributes.`Run Name`")
                .unwrap_err()
                .message()
                .starts_with("Invalid attribute key 'Run Name' specified.")
        );
        assert_eq!(parse_run_order_by("datasets.name").unwrap_err().message(), "Invalid identifier type 'dataset'");
    }
}
