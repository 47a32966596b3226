//! Tokenizer for FHIRPath source text.

use crate::error::ParseError;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// Plain identifier (may be a keyword such as `and`, `true`, `div`).
    Ident(String),
    /// Back-tick delimited identifier: never a keyword.
    Delimited(String),
    Str(String),
    /// Number text as written (`12`, `1.50`).
    Number(String),
    /// Body of an `@...` literal (without the `@`).
    DateTime(String),
    /// `%name`, `%'name'` or `%`name``.
    Var(String),
    /// `$this`, `$index`, `$total`.
    Dollar(String),
    Sym(&'static str),
    Eof,
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

const SYMBOLS: [&str; 21] = [
    "!=", "!~", "<=", ">=", ".", "[", "]", "(", ")", "{", "}", ",", "+", "-", "*", "/", "&", "|",
    "=", "~", "<",
];

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lx = Lexer {
        chars: src.char_indices().collect(),
        i: 0,
        src_len: src.len(),
    };
    let mut out = Vec::new();
    loop {
        lx.skip_trivia()?;
        let pos = lx.pos();
        let Some(c) = lx.peek(0) else {
            out.push(Token { tok: Tok::Eof, pos });
            return Ok(out);
        };
        let tok = lx.next_token(c, pos)?;
        out.push(Token { tok, pos });
    }
}

struct Lexer {
    chars: Vec<(usize, char)>,
    i: usize,
    src_len: usize,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).map(|&(_, c)| c)
    }

    fn pos(&self) -> usize {
        self.chars.get(self.i).map_or(self.src_len, |&(p, _)| p)
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError::Syntax {
            pos: self.pos(),
            msg: msg.into(),
        }
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(c), _) if c.is_whitespace() => self.i += 1,
                (Some('/'), Some('/')) => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.i += 1;
                    }
                }
                (Some('/'), Some('*')) => {
                    self.i += 2;
                    loop {
                        match (self.peek(0), self.peek(1)) {
                            (Some('*'), Some('/')) => {
                                self.i += 2;
                                break;
                            }
                            (Some(_), _) => self.i += 1,
                            (None, _) => return Err(self.err("unterminated comment")),
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self, c: char, pos: usize) -> Result<Tok, ParseError> {
        if c.is_ascii_alphabetic() || c == '_' {
            return Ok(Tok::Ident(self.word()));
        }
        if c.is_ascii_digit() {
            return Ok(Tok::Number(self.number()));
        }
        match c {
            '`' => {
                self.i += 1;
                Ok(Tok::Delimited(self.quoted('`')?))
            }
            '\'' => {
                self.i += 1;
                Ok(Tok::Str(self.quoted('\'')?))
            }
            '@' => {
                self.i += 1;
                Ok(Tok::DateTime(self.datetime_body()))
            }
            '%' => {
                self.i += 1;
                self.variable()
            }
            '$' => {
                self.i += 1;
                Ok(Tok::Dollar(self.word()))
            }
            '>' if self.peek(1) == Some('=') => {
                self.i += 2;
                Ok(Tok::Sym(">="))
            }
            '>' => {
                self.i += 1;
                Ok(Tok::Sym(">"))
            }
            _ => self.symbol(pos),
        }
    }

    fn symbol(&mut self, pos: usize) -> Result<Tok, ParseError> {
        for sym in SYMBOLS {
            let len = sym.chars().count();
            let matches = sym
                .chars()
                .enumerate()
                .all(|(k, sc)| self.peek(k) == Some(sc));
            if matches {
                self.i += len;
                return Ok(Tok::Sym(sym));
            }
        }
        Err(ParseError::Syntax {
            pos,
            msg: format!("unexpected character {:?}", self.peek(0).unwrap_or(' ')),
        })
    }

    fn word(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self
            .peek(0)
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            s.push(c);
            self.i += 1;
        }
        s
    }

    fn number(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek(0).filter(char::is_ascii_digit) {
            s.push(c);
            self.i += 1;
        }
        // A '.' belongs to the number only when digits follow; otherwise it
        // is member access (`1.convertsToInteger()`).
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            s.push('.');
            self.i += 1;
            while let Some(c) = self.peek(0).filter(char::is_ascii_digit) {
                s.push(c);
                self.i += 1;
            }
        }
        s
    }

    fn datetime_body(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek(0) {
            let take = match c {
                '0'..='9' | 'T' | 'Z' | ':' => true,
                // Date separators and zone offsets must be followed by digits.
                '-' | '+' | '.' => self.peek(1).is_some_and(|n| n.is_ascii_digit()),
                _ => false,
            };
            if !take {
                break;
            }
            s.push(c);
            self.i += 1;
        }
        s
    }

    fn variable(&mut self) -> Result<Tok, ParseError> {
        match self.peek(0) {
            Some('`') => {
                self.i += 1;
                Ok(Tok::Var(self.quoted('`')?))
            }
            Some('\'') => {
                self.i += 1;
                Ok(Tok::Var(self.quoted('\'')?))
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => Ok(Tok::Var(self.word())),
            _ => Err(self.err("expected variable name after '%'")),
        }
    }

    fn quoted(&mut self, close: char) -> Result<String, ParseError> {
        let mut s = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(self.err("unterminated literal"));
            };
            self.i += 1;
            if c == close {
                return Ok(s);
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            let Some(e) = self.peek(0) else {
                return Err(self.err("unterminated escape"));
            };
            self.i += 1;
            match e {
                'n' => s.push('\n'),
                'r' => s.push('\r'),
                't' => s.push('\t'),
                'f' => s.push('\u{c}'),
                'u' => s.push(self.unicode_escape()?),
                '\\' | '/' | '"' | '\'' | '`' => s.push(e),
                other => return Err(self.err(format!("invalid escape \\{other}"))),
            }
        }
    }

    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let mut code = 0u32;
        for _ in 0..4 {
            let d = self
                .peek(0)
                .and_then(|c| c.to_digit(16))
                .ok_or_else(|| self.err("invalid \\u escape"))?;
            code = code * 16 + d;
            self.i += 1;
        }
        char::from_u32(code).ok_or_else(|| self.err("invalid unicode code point"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers_and_member_access() {
        assert_eq!(
            toks("1.is"),
            vec![
                Tok::Number("1".into()),
                Tok::Sym("."),
                Tok::Ident("is".into()),
                Tok::Eof
            ]
        );
        assert_eq!(toks("1.50")[0], Tok::Number("1.50".into()));
    }

    #[test]
    fn literals_and_comments() {
        assert_eq!(toks("'a\\'b'")[0], Tok::Str("a'b".into()));
        assert_eq!(toks("'\\u0065'")[0], Tok::Str("e".into()));
        assert_eq!(
            toks("@2015-02-04T14:34.is")[0],
            Tok::DateTime("2015-02-04T14:34".into())
        );
        assert_eq!(toks("1 // c\n")[1], Tok::Eof);
        assert!(tokenize("1 /* open").is_err());
        assert!(tokenize("'open").is_err());
        assert!(tokenize("1 # 2").is_err());
    }
}
