//! Splits a byte stream into lines the way linuxkit's memlogd does (Go's
//! `bufio.Reader.ReadLine`: `\n` or `\r\n` ends a line, a last line without
//! newline is kept at EOF), truncating each line to `max_len` bytes while
//! holding at most `max_len + 1` bytes of it.

use std::borrow::Cow;

/// Incremental line splitter with a bounded buffer.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    max_len: usize,
    cur: Vec<u8>,
    raw_len: usize,
    last_cr: bool,
}

impl LineSplitter {
    /// A splitter keeping at most `max_len` bytes per line.
    pub fn new(max_len: usize) -> Self {
        LineSplitter {
            max_len,
            cur: Vec::new(),
            raw_len: 0,
            last_cr: false,
        }
    }

    /// Feeds `data`; `emit(line, truncated)` is called for every completed line.
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            self.append(&data[..nl]);
            self.finish_line(true, &mut emit);
            data = &data[nl + 1..];
        }
        self.append(data);
    }

    /// End of stream: emits the pending partial line, if any.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if self.raw_len > 0 {
            self.finish_line(false, &mut emit);
        }
    }

    fn append(&mut self, seg: &[u8]) {
        if seg.is_empty() {
            return;
        }
        let room = (self.max_len + 1).saturating_sub(self.cur.len());
        self.cur.extend_from_slice(&seg[..seg.len().min(room)]);
        self.raw_len += seg.len();
        self.last_cr = seg[seg.len() - 1] == b'\r';
    }

    fn finish_line(&mut self, newline: bool, emit: &mut impl FnMut(&[u8], bool)) {
        let effective = self.raw_len - usize::from(newline && self.last_cr);
        let kept = effective.min(self.max_len);
        emit(&self.cur[..kept], effective > self.max_len);
        self.cur.clear();
        if self.cur.capacity() > 4096 {
            self.cur.shrink_to(4096);
        }
        self.raw_len = 0;
        self.last_cr = false;
    }
}

/// Turns a line's bytes into the stored message: invalid UTF-8 becomes U+FFFD,
/// and a truncated line loses a character cut in half at its end.
pub(crate) fn to_msg(bytes: &[u8], truncated: bool) -> Cow<'_, str> {
    let bytes = if truncated {
        trim_incomplete_tail(bytes)
    } else {
        bytes
    };
    String::from_utf8_lossy(bytes)
}

fn trim_incomplete_tail(b: &[u8]) -> &[u8] {
    let n = b.len();
    for back in 1..=n.min(4) {
        let c = b[n - back];
        if c & 0xc0 != 0x80 {
            let need = match c {
                0xf0.. => 4,
                0xe0.. => 3,
                0xc0.. => 2,
                _ => 1,
            };
            return if need > back { &b[..n - back] } else { b };
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l, t| {
                out.push((String::from_utf8_lossy(l).into_owned(), t))
            });
        }
        s.finish(|l, t| out.push((String::from_utf8_lossy(l).into_owned(), t)));
        out
    }

    fn l(s: &str, t: bool) -> (String, bool) {
        (s.to_string(), t)
    }

    #[test]
    fn splits_on_newline_and_crlf() {
        assert_eq!(
            split(100, &[b"a\nb\r\n\nc\rd\n"]),
            [l("a", false), l("b", false), l("", false), l("c\rd", false)]
        );
    }

    #[test]
    fn keeps_last_partial_line_at_eof() {
        assert_eq!(split(100, &[b"a\nlast"]), [l("a", false), l("last", false)]);
        assert_eq!(split(100, &[b"x\r"]), [l("x\r", false)]);
        assert!(split(100, &[b""]).is_empty());
    }

    #[test]
    fn joins_lines_across_chunks() {
        assert_eq!(
            split(100, &[b"he", b"llo\r", b"\nwor", b"ld\n"]),
            [l("hello", false), l("world", false)]
        );
    }

    #[test]
    fn truncates_long_lines() {
        assert_eq!(
            split(4, &[b"0123456789\nabcd\nabcde\n"]),
            [l("0123", true), l("abcd", false), l("abcd", true)]
        );
        // across chunks, only max_len + 1 bytes are kept
        let mut s = LineSplitter::new(3);
        s.feed(b"abcdefgh", |_, _| panic!());
        assert_eq!(s.cur.len(), 4);
        let mut got = Vec::new();
        s.feed(b"ij\n", |line, t| got.push((line.to_vec(), t)));
        assert_eq!(got, [(b"abc".to_vec(), true)]);
    }

    #[test]
    fn crlf_at_the_boundary_is_not_truncation() {
        assert_eq!(split(4, &[b"abcd\r\n"]), [l("abcd", false)]);
        assert_eq!(split(4, &[b"abcd", b"\r", b"\n"]), [l("abcd", false)]);
        assert_eq!(split(4, &[b"abcde\r\n"]), [l("abcd", true)]);
    }

    #[test]
    fn msg_is_lossy_and_trims_cut_characters() {
        assert_eq!(to_msg(b"ok", false), "ok");
        assert_eq!(to_msg(b"a\xffb", false), "a\u{fffd}b");
        // "é" is C3 A9; cut after C3
        assert_eq!(to_msg(b"ab\xc3", true), "ab");
        // "✓" is E2 9C 93; cut after E2 9C
        assert_eq!(to_msg(b"a\xe2\x9c", true), "a");
        assert_eq!(to_msg("a✓".as_bytes(), true), "a✓");
        // not truncated: the broken tail is kept (lossily)
        assert_eq!(to_msg(b"ab\xc3", false), "ab\u{fffd}");
    }
}
