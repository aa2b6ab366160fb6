//! Shell-style globs with the meaning of Python's `fnmatch.fnmatchcase`,
//! which the reference implementation uses for `.museignore`,
//! `.museattributes`, `show-ref -p` and `for-each-ref -p`.
//!
//! Syntax: `*` matches any run of characters (including `/`), `?` one
//! character, `[...]` one character of a set (`[!...]` negated, `a-z`
//! ranges, a `]` first in the set is literal, a `-` first or last is
//! literal, a range whose ends are reversed is empty); an unclosed `[` is a
//! literal `[`. Every other character, `\` included, matches itself:
//! there are no escapes. Matching is case-sensitive and covers the whole
//! text.
//!
//! Invariant: matching never backtracks. The pattern is cut at its stars
//! into segments; the first must match at the start, the last at the end,
//! and each middle one is found leftmost after the previous one (for globs,
//! the leftmost match of every segment is the best one). Each search is a
//! bit-parallel scan (shift-and), so one match costs
//! O((text + pattern) × ⌈segment / 64⌉) character steps, whatever the
//! number of stars.

use std::cmp::Ordering;

/// One position of a glob: what it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    /// This character.
    Lit(char),
    /// `?`: any character.
    Any,
    /// `[...]`: a set of inclusive ranges, or its complement.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Atom {
    fn matches(&self, c: char) -> bool {
        match self {
            Atom::Lit(l) => *l == c,
            Atom::Any => true,
            Atom::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// A star-free run of atoms, prepared for the bit-parallel scan.
#[derive(Debug, Clone)]
struct Segment {
    atoms: Vec<Atom>,
    /// `(char, bitmask of the positions holding that literal)`, sorted.
    literals: Vec<(char, Vec<u64>)>,
    /// Positions holding `?`.
    any: Vec<u64>,
    /// Positions holding a class, with the class.
    classes: Vec<(usize, Atom)>,
}

impl Segment {
    fn new(atoms: Vec<Atom>) -> Self {
        let words = atoms.len().div_ceil(64).max(1);
        let mut literals: Vec<(char, Vec<u64>)> = Vec::new();
        let mut any = vec![0u64; words];
        let mut classes = Vec::new();
        for (i, atom) in atoms.iter().enumerate() {
            let (word, bit) = (i / 64, 1u64 << (i % 64));
            match atom {
                Atom::Lit(c) => match literals.binary_search_by(|(l, _)| l.cmp(c)) {
                    Ok(at) => literals[at].1[word] |= bit,
                    Err(at) => {
                        let mut mask = vec![0u64; words];
                        mask[word] |= bit;
                        literals.insert(at, (*c, mask));
                    }
                },
                Atom::Any => any[word] |= bit,
                Atom::Class { .. } => classes.push((i, atom.clone())),
            }
        }
        Self {
            atoms,
            literals,
            any,
            classes,
        }
    }

    fn len(&self) -> usize {
        self.atoms.len()
    }

    /// Whether the segment matches `text` exactly (same length).
    fn matches_at(&self, text: &[char], ops: &mut u64) -> bool {
        text.len() == self.atoms.len()
            && self.atoms.iter().zip(text).all(|(a, &c)| {
                *ops += 1;
                a.matches(c)
            })
    }

    /// The positions of the segment that character `c` satisfies, into `out`.
    fn mask(&self, c: char, out: &mut [u64], ops: &mut u64) {
        out.copy_from_slice(&self.any);
        if let Ok(at) = self.literals.binary_search_by(|(l, _)| l.cmp(&c)) {
            for (o, m) in out.iter_mut().zip(&self.literals[at].1) {
                *o |= m;
            }
        }
        for (i, class) in &self.classes {
            *ops += 1;
            if class.matches(c) {
                out[i / 64] |= 1u64 << (i % 64);
            }
        }
    }

    /// The start of the leftmost occurrence of the segment in `text`
    /// (shift-and: one pass over `text`, never revisiting a character).
    fn find(&self, text: &[char], ops: &mut u64) -> Option<usize> {
        let m = self.atoms.len();
        if m == 0 {
            return Some(0);
        }
        let words = self.any.len();
        let (last_word, last_bit) = ((m - 1) / 64, 1u64 << ((m - 1) % 64));
        let mut state = vec![0u64; words];
        let mut mask = vec![0u64; words];
        for (j, &c) in text.iter().enumerate() {
            *ops += words as u64;
            self.mask(c, &mut mask, ops);
            // state = ((state << 1) | 1) & mask, across words.
            let mut carry = 1u64;
            for (s, k) in state.iter_mut().zip(&mask) {
                let next_carry = *s >> 63;
                *s = ((*s << 1) | carry) & k;
                carry = next_carry;
            }
            if state[last_word] & last_bit != 0 {
                return Some(j + 1 - m);
            }
        }
        None
    }
}

/// A compiled glob (see the module docs).
#[derive(Debug, Clone)]
pub struct Glob {
    /// The segments between stars, in order.
    segments: Vec<Segment>,
    /// Whether the pattern has a star at all (otherwise one segment that
    /// must match the whole text).
    starred: bool,
}

/// Parses the set after a `[` at `chars[start]` (the index just past the
/// `[`) as Python's `fnmatch.translate` does; returns the atom and the index
/// just past the closing `]`, or `None` when the set is not closed.
fn parse_class(chars: &[char], start: usize) -> Option<(Atom, usize)> {
    let mut j = start;
    if chars.get(j) == Some(&'!') {
        j += 1;
    }
    if chars.get(j) == Some(&']') {
        j += 1;
    }
    while j < chars.len() && chars[j] != ']' {
        j += 1;
    }
    if j >= chars.len() {
        return None;
    }
    let body = &chars[start..j];
    let (negated, body) = match body.split_first() {
        Some(('!', rest)) => (true, rest),
        _ => (false, body),
    };
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < body.len() {
        // A `-` between two characters makes a range; first or last it is
        // a literal.
        if i + 2 < body.len() && body[i + 1] == '-' {
            let (lo, hi) = (body[i], body[i + 2]);
            // A reversed range is empty (Python drops it).
            if lo.cmp(&hi) != Ordering::Greater {
                ranges.push((lo, hi));
            }
            i += 3;
        } else {
            ranges.push((body[i], body[i]));
            i += 1;
        }
    }
    Some((Atom::Class { negated, ranges }, j + 1))
}

impl Glob {
    /// Compiles `pattern`. Every text is a valid pattern.
    #[must_use]
    pub fn new(pattern: &str) -> Self {
        let chars: Vec<char> = pattern.chars().collect();
        let mut segments = Vec::new();
        let mut current = Vec::new();
        let mut starred = false;
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    starred = true;
                    segments.push(Segment::new(std::mem::take(&mut current)));
                    while chars.get(i) == Some(&'*') {
                        i += 1;
                    }
                    continue;
                }
                '?' => current.push(Atom::Any),
                '[' => {
                    if let Some((atom, next)) = parse_class(&chars, i + 1) {
                        current.push(atom);
                        i = next;
                        continue;
                    }
                    current.push(Atom::Lit('['));
                }
                c => current.push(Atom::Lit(c)),
            }
            i += 1;
        }
        segments.push(Segment::new(current));
        Self { segments, starred }
    }

    /// Whether `text` matches the whole pattern.
    #[must_use]
    pub fn matches(&self, text: &str) -> bool {
        let mut ops = 0;
        self.matches_counting(text, &mut ops)
    }

    /// [`Glob::matches`], adding the character steps it took to `ops` (the
    /// measure of the linear-time bound, for tests).
    pub(crate) fn matches_counting(&self, text: &str, ops: &mut u64) -> bool {
        let text: Vec<char> = text.chars().collect();
        *ops += text.len() as u64;
        self.matches_chars(&text, ops)
    }

    fn matches_chars(&self, text: &[char], ops: &mut u64) -> bool {
        let Some((first, rest)) = self.segments.split_first() else {
            return text.is_empty();
        };
        if !self.starred {
            return first.matches_at(text, ops);
        }
        let Some((last, middle)) = rest.split_last() else {
            return first.matches_at(text, ops);
        };
        if first.len() + last.len() > text.len() {
            return false;
        }
        let (head, tail) = text.split_at(text.len() - last.len());
        if !first.matches_at(&head[..first.len()], ops) || !last.matches_at(tail, ops) {
            return false;
        }
        let mut at = first.len();
        for segment in middle {
            match segment.find(&head[at..], ops) {
                Some(start) => at += start + segment.len(),
                None => return false,
            }
        }
        true
    }
}

/// Whether `text` matches the glob `pattern` (Python's
/// `fnmatch.fnmatchcase`; see the module docs for the syntax).
///
/// ```
/// use muse_store::fnmatch;
///
/// assert!(fnmatch("refs/heads/d*", "refs/heads/dev"));
/// assert!(fnmatch("*.rs", "src/deep/main.rs"), "* crosses /");
/// assert!(fnmatch("file[0-9].bin", "file7.bin"));
/// assert!(!fnmatch("[!ab].txt", "a.txt"));
/// assert!(fnmatch("a\\b", "a\\b"), "no escapes");
/// ```
#[must_use]
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    Glob::new(pattern).matches(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_fnmatch_cases() {
        // Each line: pattern, text, what Python's fnmatch.fnmatchcase says.
        let cases = [
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*", "a", true),
            ("*a", "ba", true),
            ("*a", "ab", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("?", "/", true),
            ("*", "a/b/c", true),
            ("out/*", "out/a/b", true),
            ("[]]", "]", true),
            ("[!]]", "]", false),
            ("[!]]", "a", true),
            ("[", "[", true),
            ("[!]", "[!]", true),
            ("[]", "[]", true),
            ("[a-]", "-", true),
            ("[-a]", "-", true),
            ("[z-a]", "m", false),
            ("[z-a]", "z", false),
            ("[!z-a]", "m", true),
            ("[a-c]x", "bx", true),
            ("[\\]", "\\", true),
            ("\\*", "\\x", true),
            ("\\*", "*", false),
            ("*.TXT", "a.txt", false),
            ("日本語*", "日本語x", true),
            ("ab*cd*ef", "abcdcdef", true),
            ("ab*ab", "ab", false),
            ("a?c", "a\nc", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                fnmatch(pattern, text),
                expected,
                "fnmatch({pattern:?}, {text:?})"
            );
        }
    }

    /// Segments longer than one machine word use several words of state.
    #[test]
    fn long_segments_span_words() {
        let seg: String = "ab?".repeat(30);
        let pattern = format!("*{seg}*");
        let text = format!("xx{}yy", "abz".repeat(30));
        assert!(fnmatch(&pattern, &text));
        let text = format!("xx{}yy", "abz".repeat(29));
        assert!(!fnmatch(&pattern, &text));
    }

    /// Many stars cost no more than a pass per segment: the steps stay
    /// within a small multiple of the text and pattern lengths, where a
    /// backtracking matcher needs exponentially many.
    #[test]
    fn many_stars_stay_linear() {
        let text = "a".repeat(4096) + "b";
        for (pattern, expected) in [
            (format!("{}b", "a*".repeat(30)), true),
            ("*a".repeat(30) + "*b", true),
            ("**".repeat(30) + "b", true),
            (format!("*{}c*b", "a".repeat(40)), false),
            (format!("*{}*b", "a?".repeat(40)), true),
            ("*a*".repeat(30) + "c", false),
        ] {
            let glob = Glob::new(&pattern);
            let mut ops = 0;
            assert_eq!(
                glob.matches_counting(&text, &mut ops),
                expected,
                "{pattern}"
            );
            let bound = 4 * (text.len() + pattern.len()) as u64;
            assert!(
                ops <= bound,
                "{pattern:?} took {ops} steps on 4 KiB; a linear matcher stays under {bound}"
            );
        }
    }
}
