//! Keyset pages: a list query fetches `limit + 1` rows, and the extra one tells whether a
//! next page exists, without a count.

/// Cuts `rows` (fetched with `limit + 1`) to `limit` and returns them with the key of the
/// last one kept when more rows follow (the next page's `before`), else `None`.
pub fn split<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> i64) -> (Vec<T>, Option<i64>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(key);
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_extra_row_means_a_next_page() {
        assert_eq!(super::split(vec![9, 8, 7], 2, |n| *n), (vec![9, 8], Some(8)));
        assert_eq!(super::split(vec![9, 8], 2, |n| *n), (vec![9, 8], None));
    }
}
