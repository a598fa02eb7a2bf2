//! Which byte ranges of a volume need copying, from the block hashes of the
//! source and the target (`vol hash`). A block is skipped when both sides are
//! all-zero or their hashes are equal; consecutive blocks to copy are merged
//! into ranges of at most `max_range` bytes so progress stays regular.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub offset: u64,
    pub length: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Plan {
    pub copy: Vec<Range>,
    /// Bytes already right on the target.
    pub skipped: u64,
}

pub fn plan(
    size: u64,
    block_size: u64,
    source: &[Option<String>],
    target: &[Option<String>],
    max_range: u64,
) -> Plan {
    let mut out = Plan::default();
    let mut current: Option<Range> = None;
    for (i, src) in source.iter().enumerate() {
        let offset = i as u64 * block_size;
        if offset >= size {
            break;
        }
        let length = block_size.min(size - offset);
        let same = target.get(i).is_some_and(|dst| dst == src);
        if same {
            out.skipped += length;
            if let Some(r) = current.take() {
                out.copy.push(r);
            }
            continue;
        }
        match current.as_mut() {
            Some(r) if r.offset + r.length == offset && r.length + length <= max_range => {
                r.length += length
            }
            _ => {
                if let Some(r) = current.take() {
                    out.copy.push(r);
                }
                current = Some(Range { offset, length });
            }
        }
    }
    if let Some(r) = current {
        out.copy.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn zero_and_equal_blocks_are_skipped_and_runs_are_merged() {
        let src = [None, h("a"), h("b"), h("c"), None, h("e")];
        let dst = [None, h("a"), h("x"), None, h("old"), h("e")];
        let p = plan(6 * 4, 4, &src, &dst, 1 << 20);
        // Block 2 and 3 differ and are adjacent; block 4 must be zeroed on the target.
        assert_eq!(
            p.copy,
            vec![Range {
                offset: 8,
                length: 12
            }]
        );
        assert_eq!(p.skipped, 12);
    }

    #[test]
    fn ranges_respect_the_maximum_and_the_last_short_block() {
        let src = [h("a"), h("b"), h("c")];
        let p = plan(10, 4, &src, &[], 8);
        assert_eq!(
            p.copy,
            vec![
                Range {
                    offset: 0,
                    length: 8
                },
                Range {
                    offset: 8,
                    length: 2
                }
            ]
        );
        assert_eq!(p.skipped, 0);
    }

    #[test]
    fn an_identical_target_needs_nothing() {
        let src = [h("a"), None];
        let p = plan(8, 4, &src, &src, 8);
        assert!(p.copy.is_empty());
        assert_eq!(p.skipped, 8);
    }
}
