//! Which byte ranges of a volume need copying, from the block hashes of the
//! source and the target (`vol hash`). A block is skipped when both sides are
//! all-zero or their hashes are equal; consecutive blocks to copy are merged
//! into ranges of at most `max_range` bytes so progress stays regular.

/// Most blocks a volume is compared in (up to 16 TiB; past that the block
/// stays at the 64 MiB a grid hashes): a hash answer stays under about
/// 18 MB (BLAKE3, 64 hex digits a block; a grid's reply may be 64 MiB) and
/// the helper's digests of one volume under about 40 MB.
pub const MAX_BLOCKS: u64 = 1 << 18;
/// The largest block a grid hashes (the dialect's bound).
const LARGEST_BLOCK: u64 = 64 << 20;

/// The block in which a volume of `size` bytes is compared, moved and
/// verified — by the helper and by the console's preview alike: `finest`
/// (`MIG_BLOCK_SIZE`, 64 KiB by default, as QEMU's dirty bitmaps and
/// VMware's changed-block tracking count: a 64 KiB write makes 64 KiB to
/// copy again, not 4 MiB), or the smallest power of two that keeps the
/// volume within [`MAX_BLOCKS`] blocks (64 KiB up to 16 GiB, 1 MiB at
/// 256 GiB).
pub fn block_size(size: u64, finest: u64) -> u64 {
    let needed = size.div_ceil(MAX_BLOCKS).next_power_of_two();
    finest.max(needed).min(LARGEST_BLOCK.max(finest))
}

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
    fn volumes_are_compared_in_64_kib_blocks_until_they_would_have_too_many() {
        let fine = 64 << 10;
        assert_eq!(block_size(0, fine), fine);
        assert_eq!(block_size(384 << 20, fine), fine);
        assert_eq!(block_size(16 << 30, fine), fine);
        assert_eq!(block_size((16 << 30) + 1, fine), 128 << 10);
        assert_eq!(block_size(256 << 30, fine), 1 << 20);
        assert_eq!(
            block_size(1 << 50, fine),
            64 << 20,
            "never above what a grid hashes"
        );
        // An operator's coarser floor holds.
        assert_eq!(block_size(384 << 20, 4 << 20), 4 << 20);
        for size in [1, 4096, 1 << 30, 3 << 40] {
            let b = block_size(size, fine);
            assert!(
                b.is_multiple_of(4096) && size.div_ceil(b) <= MAX_BLOCKS,
                "{size}: {b}"
            );
        }
    }

    #[test]
    fn an_identical_target_needs_nothing() {
        let src = [h("a"), None];
        let p = plan(8, 4, &src, &src, 8);
        assert!(p.copy.is_empty());
        assert_eq!(p.skipped, 8);
    }
}
