//! `experiments/search`: filters on the experiment name, its timestamps and its tags, and
//! order_by on name, id and timestamps (MLflow `SearchExperimentsUtils` and the SQL store's
//! `_get_search_experiments_filter_clauses`).

use super::syntax::{
    AttrOrTag, Comparison, Value, attribute_or_tag, entity_string, integer, num_op, parse_comparisons,
    parse_order_by_clause, quoted_string, str_op,
};
use super::{FilterError, NumOp, OrderBy, StrOp};

/// A parsed `experiments/search` filter: every clause must hold. Empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExperimentFilter(pub Vec<ExperimentClause>);

/// One condition of an experiment filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExperimentClause {
    /// `name <op> '<string>'` (also `attribute.name`).
    Name { op: StrOp, value: String },
    /// `creation_time` or `last_update_time` against epoch milliseconds.
    Time { attr: ExperimentTimeAttr, op: NumOp, value: i64 },
    /// `tags.<key> <op> '<string>'`; only experiments that have the tag can match.
    Tag { key: String, op: StrOp, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExperimentTimeAttr {
    CreationTime,
    LastUpdateTime,
}

/// What an experiment order_by clause sorts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExperimentOrderKey {
    Name,
    ExperimentId,
    CreationTime,
    LastUpdateTime,
}

const FILTER_KEYS: &[&str] = &["name", "creation_time", "last_update_time"];
const ORDER_KEYS: &[&str] = &["name", "experiment_id", "creation_time", "last_update_time"];

/// Parses an `experiments/search` filter such as
/// `name LIKE 'fraud-%' AND tags.team = 'risk' AND creation_time > 1700000000000`.
/// Blank input gives an empty filter.
pub fn parse_experiment_filter(filter: &str) -> Result<ExperimentFilter, FilterError> {
    let clauses = parse_comparisons(filter)?.iter().map(clause).collect::<Result<_, _>>()?;
    Ok(ExperimentFilter(clauses))
}

fn clause(cmp: &Comparison<'_>) -> Result<ExperimentClause, FilterError> {
    let (entity, key) = attribute_or_tag(&cmp.ident, FILTER_KEYS)?;
    let op = cmp.op.as_str();
    let time_attr = match key.as_str() {
        "creation_time" => Some(ExperimentTimeAttr::CreationTime),
        "last_update_time" => Some(ExperimentTimeAttr::LastUpdateTime),
        _ => None,
    };
    match (entity, time_attr) {
        (AttrOrTag::Tag, _) => {
            let value = entity_string(&cmp.value, "tag")?;
            let op = str_op(op).ok_or_else(|| FilterError::new(format!("Invalid comparator for tag: {op}")))?;
            Ok(ExperimentClause::Tag { key, op, value })
        }
        (AttrOrTag::Attribute, Some(attr)) => {
            let value = integer(&cmp.value, &key)?;
            let op = num_op(op)
                .ok_or_else(|| FilterError::new(format!("Invalid comparator for numeric attribute: {op}")))?;
            Ok(ExperimentClause::Time { attr, op, value })
        }
        (AttrOrTag::Attribute, None) => {
            let value = match &cmp.value {
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
                other => quoted_string(other)?,
            };
            let op =
                str_op(op).ok_or_else(|| FilterError::new(format!("Invalid comparator for string attribute: {op}")))?;
            Ok(ExperimentClause::Name { op, value })
        }
    }
}

/// Parses one `experiments/search` order_by clause such as `name`, `creation_time DESC` or
/// `last_update_time ASC`. Without a direction it is ascending. (MLflow's default order when
/// none is given is `creation_time DESC, experiment_id ASC`; that choice is the caller's.)
pub fn parse_experiment_order_by(clause: &str) -> Result<OrderBy<ExperimentOrderKey>, FilterError> {
    let (ident, ascending) = parse_order_by_clause(clause)?;
    let (entity, key) = attribute_or_tag(&ident, ORDER_KEYS)?;
    if matches!(entity, AttrOrTag::Tag) {
        return Err(FilterError::new("Invalid order_by entity: tag"));
    }
    let key = match key.as_str() {
        "name" => ExperimentOrderKey::Name,
        "experiment_id" => ExperimentOrderKey::ExperimentId,
        "creation_time" => ExperimentOrderKey::CreationTime,
        _ => ExperimentOrderKey::LastUpdateTime,
    };
    Ok(OrderBy { key, ascending })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(filter: &str) -> ExperimentClause {
        let ExperimentFilter(mut clauses) = parse_experiment_filter(filter).unwrap();
        assert_eq!(clauses.len(), 1, "{filter}");
        clauses.remove(0)
    }

    fn err(filter: &str) -> String {
        parse_experiment_filter(filter).unwrap_err().message().to_owned()
    }

    #[test]
    fn name_with_every_string_comparator() {
        for (text, op) in [("=", StrOp::Eq), ("!=", StrOp::Ne), ("LIKE", StrOp::Like), ("ilike", StrOp::ILike)] {
            assert_eq!(one(&format!("name {text} 'exp%'")), ExperimentClause::Name { op, value: "exp%".into() });
        }
    }

    #[test]
    fn name_with_attribute_prefixes() {
        let expected = ExperimentClause::Name { op: StrOp::Eq, value: "a".into() };
        assert_eq!(one("attribute.name = 'a'"), expected);
        assert_eq!(one("attributes.name = 'a'"), expected);
        assert_eq!(one(r#"name = "a""#), expected);
    }

    #[test]
    fn time_attributes_with_numeric_comparators() {
        assert_eq!(
            one("creation_time > 1700000000000"),
            ExperimentClause::Time { attr: ExperimentTimeAttr::CreationTime, op: NumOp::Gt, value: 1_700_000_000_000 }
        );
        assert_eq!(
            one("attributes.last_update_time <= 5"),
            ExperimentClause::Time { attr: ExperimentTimeAttr::LastUpdateTime, op: NumOp::Le, value: 5 }
        );
    }

    #[test]
    fn tags_with_backticks_and_like() {
        assert_eq!(
            one("tags.`mlflow.note.content` LIKE '%fraud%'"),
            ExperimentClause::Tag { key: "mlflow.note.content".into(), op: StrOp::Like, value: "%fraud%".into() }
        );
        assert_eq!(
            one("tag.team != 'risk'"),
            ExperimentClause::Tag { key: "team".into(), op: StrOp::Ne, value: "risk".into() }
        );
    }

    #[test]
    fn conjunction_of_all_kinds() {
        let ExperimentFilter(clauses) =
            parse_experiment_filter("name LIKE 'fraud-%' and tags.team = 'risk' AND creation_time >= 0").unwrap();
        assert_eq!(clauses.len(), 3);
    }

    #[test]
    fn run_entities_are_rejected() {
        assert_eq!(
            err("metrics.acc > 1"),
            "Invalid entity type 'metrics'. Valid entity types are ('attribute', 'tag', 'tags')"
        );
        assert!(err("params.a = 'b'").starts_with("Invalid entity type 'params'"));
    }

    #[test]
    fn unknown_attribute_is_rejected() {
        assert_eq!(
            err("experiment_id = '1'"),
            "Invalid attribute key 'experiment_id' specified. Valid keys are \
             '{'creation_time', 'last_update_time', 'name'}'"
        );
    }

    #[test]
    fn wrong_comparators_are_rejected_with_the_store_messages() {
        assert_eq!(err("name > 'a'"), "Invalid comparator for string attribute: >");
        assert_eq!(err("name NOT IN 'a'"), "Invalid comparator for string attribute: NOT IN");
        assert_eq!(err("creation_time LIKE 5"), "Invalid comparator for numeric attribute: LIKE");
        assert_eq!(err("tags.a >= 'b'"), "Invalid comparator for tag: >=");
    }

    #[test]
    fn wrong_value_types_are_rejected() {
        assert_eq!(
            err("name IN ('a', 'b')"),
            "Only the 'run_id' attribute supports comparison with a list of quoted string values."
        );
        assert_eq!(err("name = 5"), "Expected a quoted string value for attributes. Got value 5");
        assert_eq!(
            err("creation_time > '5'"),
            "Expected numeric value type for numeric attribute: creation_time. Found '5'"
        );
        assert!(err("name = fraud").starts_with("Parameter value is either not quoted"));
        assert_eq!(err("tags.a = 1"), "Expected a quoted string value for tag (e.g. 'my-value'). Got value 1");
    }

    #[test]
    fn or_and_garbage_are_rejected() {
        assert!(err("name = 'a' OR name = 'b'").contains("OR is not supported"));
        assert_eq!(err("name = 'a' zzz"), "Invalid clause(s) in filter string: 'zzz'");
    }

    #[test]
    fn order_by_keys_and_directions() {
        for (clause, key, ascending) in [
            ("name", ExperimentOrderKey::Name, true),
            ("experiment_id DESC", ExperimentOrderKey::ExperimentId, false),
            ("creation_time desc", ExperimentOrderKey::CreationTime, false),
            ("attribute.last_update_time ASC", ExperimentOrderKey::LastUpdateTime, true),
        ] {
            assert_eq!(parse_experiment_order_by(clause).unwrap(), OrderBy { key, ascending });
        }
    }

    #[test]
    fn order_by_rejects_tags_and_unknown_keys() {
        assert_eq!(parse_experiment_order_by("tags.team").unwrap_err().message(), "Invalid order_by entity: tag");
        assert!(
            parse_experiment_order_by("start_time")
                .unwrap_err()
                .message()
                .starts_with("Invalid attribute key 'start_time' specified.")
        );
        assert_eq!(
            parse_experiment_order_by("name sideways").unwrap_err().message(),
            "Invalid ordering key in order_by clause 'name sideways'."
        );
    }
}
