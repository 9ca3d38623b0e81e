//! Model registry searches: `registered-models/search` and `model-versions/search` (MLflow
//! `SearchModelUtils`, `SearchModelVersionUtils` and the registry SQL store's checks).

use super::syntax::{
    AttrOrTag, Comparison, StrValue, Value, attribute_or_tag, entity_string, integer, integer_literal, num_op,
    parse_comparisons, parse_order_by_clause, quoted_string, set_repr, str_cond, str_op,
};
use super::{FilterError, NumOp, OrderBy, StrCond, StrOp};

/// A parsed `registered-models/search` filter: every clause must hold. Empty matches all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisteredModelFilter(pub Vec<RegisteredModelClause>);

/// One condition of a registered-model filter.
///
/// The official client appends ``AND tag.`mlflow.prompt.is_prompt` != 'true'`` to every
/// registered-model search. MLflow treats a model *without* that tag as matching `!= 'true'`
/// (and `= 'false'`), unlike every other tag clause, which needs the tag to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisteredModelClause {
    /// The name: a comparison, or `IN`/`NOT IN` a list (MLflow 3.17 accepts both).
    Name(StrCond),
    Tag {
        key: String,
        op: StrOp,
        value: String,
    },
}

/// What a registered-model order_by clause sorts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisteredModelOrderKey {
    Name,
    CreationTimestamp,
    LastUpdatedTimestamp,
}

/// A parsed `model-versions/search` filter: every clause must hold. Empty matches all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelVersionFilter(pub Vec<ModelVersionClause>);

/// One condition of a model-version filter. The same `mlflow.prompt.is_prompt` rule as for
/// [`RegisteredModelClause`] applies to version tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelVersionClause {
    /// The registered model's name: a comparison, or `IN`/`NOT IN` a list.
    Name(StrCond),
    /// The version's `source` (MLflow calls the search key `source_path`).
    SourcePath {
        op: StrOp,
        value: String,
    },
    /// The source run: a comparison, or `IN`/`NOT IN` a list.
    RunId(StrCond),
    /// The version number.
    VersionNumber {
        op: NumOp,
        value: i64,
    },
    Tag {
        key: String,
        op: StrOp,
        value: String,
    },
}

/// What a model-version order_by clause sorts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelVersionOrderKey {
    Name,
    VersionNumber,
    CreationTimestamp,
    LastUpdatedTimestamp,
}

const MODEL_FILTER_KEYS: &[&str] = &["name"];
const MODEL_ORDER_KEYS: &[&str] = &["name", "creation_timestamp", "last_updated_timestamp"];
const VERSION_FILTER_KEYS: &[&str] = &["name", "version_number", "run_id", "source_path"];
const VERSION_ORDER_KEYS: &[&str] = &["name", "version_number", "creation_timestamp", "last_updated_timestamp"];
const VERSION_NUMERIC_KEYS: &[&str] = &["version_number", "creation_timestamp", "last_updated_timestamp"];

fn tag_op(op: &str) -> Result<StrOp, FilterError> {
    str_op(op).ok_or_else(|| FilterError::new(format!("Invalid comparator for tag: {op}")))
}

fn invalid_attribute_comparator(op: &str) -> FilterError {
    FilterError::new(format!("Invalid comparator for attribute: {op}"))
}

/// MLflow's refusal of a list for a key that takes none (`keys` as Python prints a sorted list).
fn no_lists_for(keys: &str) -> FilterError {
    FilterError::new(format!("Only {keys} attributes support comparison with a list of quoted string values."))
}

const VERSION_LIST_KEYS: &str = "['name', 'run_id']";

/// The comparators of string attributes that take lists.
fn list_attribute_op(op: &str) -> Result<(), FilterError> {
    if matches!(op, "=" | "!=" | "LIKE" | "ILIKE" | "IN" | "NOT IN") {
        Ok(())
    } else {
        Err(invalid_attribute_comparator(op))
    }
}

/// Parses a `registered-models/search` filter such as
/// ``name ILIKE '%fraud%' AND tag.`mlflow.prompt.is_prompt` != 'true'``.
/// Blank input gives an empty filter.
pub fn parse_registered_model_filter(filter: &str) -> Result<RegisteredModelFilter, FilterError> {
    let clauses = parse_comparisons(filter)?.iter().map(model_clause).collect::<Result<_, _>>()?;
    Ok(RegisteredModelFilter(clauses))
}

fn model_clause(cmp: &Comparison<'_>) -> Result<RegisteredModelClause, FilterError> {
    let (entity, key) = attribute_or_tag(&cmp.ident, MODEL_FILTER_KEYS)?;
    let op = cmp.op.as_str();
    match entity {
        AttrOrTag::Tag => {
            let value = entity_string(&cmp.value, "tag")?;
            Ok(RegisteredModelClause::Tag { key, op: tag_op(op)?, value })
        }
        AttrOrTag::Attribute => {
            let value = match &cmp.value {
                Value::List { items, .. } => StrValue::Many(items.clone()?),
                Value::Number { raw } => {
                    return Err(FilterError::new(format!(
                        "Expected a quoted string value or a list of quoted string values for \
                         attributes. Got value {raw}"
                    )));
                }
                other => StrValue::One(quoted_string(other)?),
            };
            list_attribute_op(op)?;
            Ok(RegisteredModelClause::Name(str_cond(op, value, cmp.value.raw())?))
        }
    }
}

/// Parses one `registered-models/search` order_by clause: `name`, `creation_timestamp` or
/// `last_updated_timestamp`, optionally followed by `ASC` or `DESC`.
pub fn parse_registered_model_order_by(clause: &str) -> Result<OrderBy<RegisteredModelOrderKey>, FilterError> {
    let (ident, ascending) = parse_order_by_clause(clause)?;
    let (entity, key) = attribute_or_tag(&ident, MODEL_ORDER_KEYS)?;
    if matches!(entity, AttrOrTag::Tag) {
        return Err(FilterError::new("Invalid order_by entity: tag"));
    }
    let key = match key.as_str() {
        "name" => RegisteredModelOrderKey::Name,
        "creation_timestamp" => RegisteredModelOrderKey::CreationTimestamp,
        _ => RegisteredModelOrderKey::LastUpdatedTimestamp,
    };
    Ok(OrderBy { key, ascending })
}

/// Parses a `model-versions/search` filter such as
/// `name = 'fraud' AND run_id IN ('a1', 'b2') AND version_number > 3`.
/// Blank input gives an empty filter.
pub fn parse_model_version_filter(filter: &str) -> Result<ModelVersionFilter, FilterError> {
    let clauses = parse_comparisons(filter)?.iter().map(version_clause).collect::<Result<_, _>>()?;
    Ok(ModelVersionFilter(clauses))
}

fn version_clause(cmp: &Comparison<'_>) -> Result<ModelVersionClause, FilterError> {
    let (entity, key) = attribute_or_tag(&cmp.ident, VERSION_FILTER_KEYS)?;
    let op = cmp.op.as_str();
    if matches!(entity, AttrOrTag::Tag) {
        let value = entity_string(&cmp.value, "tag")?;
        return Ok(ModelVersionClause::Tag { key, op: tag_op(op)?, value });
    }
    if key == "version_number" {
        let value = match &cmp.value {
            Value::List { .. } => return Err(no_lists_for(VERSION_LIST_KEYS)),
            // MLflow passes a quoted number through to SQL, which compares it as a number.
            Value::Quoted { quote: '\'' | '"', content, raw } => integer_literal(content.trim()).ok_or_else(|| {
                FilterError::new(format!("Expected numeric value type for numeric attribute: {key}. Found {raw}"))
            })?,
            other => integer(other, &key)?,
        };
        let op = num_op(op).ok_or_else(|| invalid_attribute_comparator(op))?;
        return Ok(ModelVersionClause::VersionNumber { op, value });
    }
    let value = match &cmp.value {
        Value::List { items, .. } if key == "run_id" || key == "name" => StrValue::Many(items.clone()?),
        Value::List { .. } => return Err(no_lists_for(VERSION_LIST_KEYS)),
        Value::Number { .. } => {
            return Err(FilterError::new(format!(
                "Only the '{}' attributes support comparison with numeric values.",
                set_repr(VERSION_NUMERIC_KEYS)
            )));
        }
        other => StrValue::One(quoted_string(other)?),
    };
    let one = |value: StrValue| match value {
        StrValue::One(value) => str_op(op).map(|op| (op, value)).ok_or_else(|| invalid_attribute_comparator(op)),
        StrValue::Many(_) => Err(invalid_attribute_comparator(op)),
    };
    Ok(match key.as_str() {
        "run_id" => {
            list_attribute_op(op)?;
            ModelVersionClause::RunId(str_cond(op, value, cmp.value.raw())?)
        }
        "name" => {
            list_attribute_op(op)?;
            ModelVersionClause::Name(str_cond(op, value, cmp.value.raw())?)
        }
        _ => {
            let (op, value) = one(value)?;
            ModelVersionClause::SourcePath { op, value }
        }
    })
}

/// Parses one `model-versions/search` order_by clause: `name`, `version_number`,
/// `creation_timestamp` or `last_updated_timestamp`, optionally followed by `ASC` or `DESC`.
pub fn parse_model_version_order_by(clause: &str) -> Result<OrderBy<ModelVersionOrderKey>, FilterError> {
    let (ident, ascending) = parse_order_by_clause(clause)?;
    let (entity, key) = attribute_or_tag(&ident, VERSION_ORDER_KEYS)?;
    if matches!(entity, AttrOrTag::Tag) {
        return Err(FilterError::new("Invalid order_by entity: tag"));
    }
    let key = match key.as_str() {
        "name" => ModelVersionOrderKey::Name,
        "version_number" => ModelVersionOrderKey::VersionNumber,
        "creation_timestamp" => ModelVersionOrderKey::CreationTimestamp,
        _ => ModelVersionOrderKey::LastUpdatedTimestamp,
    };
    Ok(OrderBy { key, ascending })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(filter: &str) -> Vec<RegisteredModelClause> {
        parse_registered_model_filter(filter).unwrap().0
    }

    fn model_err(filter: &str) -> String {
        parse_registered_model_filter(filter).unwrap_err().message().to_owned()
    }

    fn version(filter: &str) -> Vec<ModelVersionClause> {
        parse_model_version_filter(filter).unwrap().0
    }

    fn version_err(filter: &str) -> String {
        parse_model_version_filter(filter).unwrap_err().message().to_owned()
    }

    fn prompt_tag() -> RegisteredModelClause {
        RegisteredModelClause::Tag { key: "mlflow.prompt.is_prompt".into(), op: StrOp::Ne, value: "true".into() }
    }

    #[test]
    fn client_prompt_filter_alone() {
        assert_eq!(model("tag.`mlflow.prompt.is_prompt` != 'true'"), vec![prompt_tag()]);
    }

    #[test]
    fn client_prompt_filter_appended_to_a_user_filter() {
        assert_eq!(
            model("name LIKE 'fraud%' AND tag.`mlflow.prompt.is_prompt` != 'true'"),
            vec![
                RegisteredModelClause::Name(StrCond::Compare { op: StrOp::Like, value: "fraud%".into() }),
                prompt_tag()
            ]
        );
    }

    #[test]
    fn registered_model_name_and_tag_comparators() {
        for (text, op) in [("=", StrOp::Eq), ("!=", StrOp::Ne), ("like", StrOp::Like), ("ILIKE", StrOp::ILike)] {
            assert_eq!(
                model(&format!("name {text} 'm' and tags.k {text} 'v'")),
                vec![
                    RegisteredModelClause::Name(StrCond::Compare { op, value: "m".into() }),
                    RegisteredModelClause::Tag { key: "k".into(), op, value: "v".into() },
                ]
            );
        }
    }

    #[test]
    fn registered_model_rejects_other_keys_and_comparators() {
        assert_eq!(model_err("run_id = 'a'"), "Invalid attribute key 'run_id' specified. Valid keys are '{'name'}'");
        assert_eq!(model_err("name > 'a'"), "Invalid comparator for attribute: >");
        assert_eq!(model_err("tags.k < 'a'"), "Invalid comparator for tag: <");
        assert_eq!(
            model_err("name = 3"),
            "Expected a quoted string value or a list of quoted string values for attributes. \
             Got value 3"
        );
        assert!(model_err("metrics.x > 1").starts_with("Invalid entity type 'metrics'"));
        assert!(model_err("name = 'a' OR name = 'b'").contains("OR is not supported"));
    }

    #[test]
    fn registered_model_order_by() {
        assert_eq!(
            parse_registered_model_order_by("name DESC").unwrap(),
            OrderBy { key: RegisteredModelOrderKey::Name, ascending: false }
        );
        assert_eq!(
            parse_registered_model_order_by("last_updated_timestamp").unwrap(),
            OrderBy { key: RegisteredModelOrderKey::LastUpdatedTimestamp, ascending: true }
        );
        assert_eq!(
            parse_registered_model_order_by("creation_timestamp asc").unwrap(),
            OrderBy { key: RegisteredModelOrderKey::CreationTimestamp, ascending: true }
        );
        assert!(parse_registered_model_order_by("timestamp").is_err());
        assert_eq!(parse_registered_model_order_by("tags.k").unwrap_err().message(), "Invalid order_by entity: tag");
    }

    #[test]
    fn model_version_every_attribute() {
        assert_eq!(
            version(
                "name = 'fraud' AND run_id IN ('a1', 'b2') AND version_number > 3 AND \
                 source_path LIKE 'models:/%' AND tags.stage ILIKE 'prod'"
            ),
            vec![
                ModelVersionClause::Name(StrCond::Compare { op: StrOp::Eq, value: "fraud".into() }),
                ModelVersionClause::RunId(StrCond::In(vec!["a1".into(), "b2".into()])),
                ModelVersionClause::VersionNumber { op: NumOp::Gt, value: 3 },
                ModelVersionClause::SourcePath { op: StrOp::Like, value: "models:/%".into() },
                ModelVersionClause::Tag { key: "stage".into(), op: StrOp::ILike, value: "prod".into() },
            ]
        );
    }

    #[test]
    fn names_and_run_ids_take_in_and_not_in_lists() {
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            version("name IN ('a', 'b') AND run_id NOT IN ('r1')"),
            vec![
                ModelVersionClause::Name(StrCond::In(list(&["a", "b"]))),
                ModelVersionClause::RunId(StrCond::NotIn(list(&["r1"]))),
            ]
        );
        assert_eq!(version("name not in ('a')"), vec![ModelVersionClause::Name(StrCond::NotIn(list(&["a"])))]);
        assert_eq!(
            model("name IN ('a', 'b') AND name NOT IN ('c')"),
            vec![
                RegisteredModelClause::Name(StrCond::In(list(&["a", "b"]))),
                RegisteredModelClause::Name(StrCond::NotIn(list(&["c"]))),
            ]
        );
        assert!(version_err("name IN 'a'").contains("expects a list"));
        assert!(model_err("name = ('a', 'b')").contains("cannot be used with a list"));
    }

    #[test]
    fn model_version_run_id_scalar_comparisons() {
        assert_eq!(
            version("run_id = 'abc'"),
            vec![ModelVersionClause::RunId(StrCond::Compare { op: StrOp::Eq, value: "abc".into() })]
        );
        assert_eq!(
            version("attribute.run_id != 'abc'"),
            vec![ModelVersionClause::RunId(StrCond::Compare { op: StrOp::Ne, value: "abc".into() })]
        );
    }

    #[test]
    fn model_version_number_accepts_quoted_integers() {
        assert_eq!(
            version("version_number = '2'"),
            vec![ModelVersionClause::VersionNumber { op: NumOp::Eq, value: 2 }]
        );
        assert_eq!(
            version_err("version_number = 'two'"),
            "Expected numeric value type for numeric attribute: version_number. Found 'two'"
        );
    }

    #[test]
    fn model_version_rejects_wrong_comparators() {
        assert_eq!(
            version_err("source_path IN ('a')"),
            "Only ['name', 'run_id'] attributes support comparison with a list of quoted string values."
        );
        assert_eq!(version_err("version_number IN (1)"), version_err("source_path IN ('a')"));
        assert_eq!(version_err("name > 'a'"), "Invalid comparator for attribute: >");
        assert_eq!(version_err("version_number LIKE 3"), "Invalid comparator for attribute: LIKE");
        assert_eq!(version_err("name >= 'a'"), "Invalid comparator for attribute: >=");
        assert_eq!(version_err("tags.a > 'b'"), "Invalid comparator for tag: >");
    }

    #[test]
    fn model_version_rejects_numbers_for_string_attributes() {
        assert_eq!(
            version_err("name = 3"),
            "Only the '{'creation_timestamp', 'last_updated_timestamp', 'version_number'}' \
             attributes support comparison with numeric values."
        );
    }

    #[test]
    fn model_version_rejects_unknown_keys() {
        assert!(
            version_err("creation_timestamp > 3").starts_with("Invalid attribute key 'creation_timestamp' specified.")
        );
        assert!(version_err("params.a = 'b'").starts_with("Invalid entity type 'params'"));
    }

    #[test]
    fn model_version_order_by() {
        assert_eq!(
            parse_model_version_order_by("version_number DESC").unwrap(),
            OrderBy { key: ModelVersionOrderKey::VersionNumber, ascending: false }
        );
        assert_eq!(
            parse_model_version_order_by("name").unwrap(),
            OrderBy { key: ModelVersionOrderKey::Name, ascending: true }
        );
        assert!(parse_model_version_order_by("run_id").is_err());
    }
}
