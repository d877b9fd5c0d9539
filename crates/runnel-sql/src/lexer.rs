//! Splits statement text into tokens with their line and column.
//!
//! Unquoted identifiers and keywords come out as [`TokenKind::Word`],
//! upper-cased (keywords are recognised by the parser, so any word can be
//! a name where the grammar allows it). Back-quoted and double-quoted
//! identifiers keep their case. Comments (`-- …` and `/* … */`) and
//! whitespace are skipped. Lines and columns are 1-based and columns count
//! chars, not bytes.

use std::fmt;

use crate::ast::Pos;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// An unquoted identifier or keyword, upper-cased.
    Word(String),
    /// A back-quoted or double-quoted identifier, with its case kept and
    /// doubled quotes unescaped.
    QuotedIdent(String),
    /// A single-quoted string, with `''` unescaped.
    String(String),
    /// Digits only: `42`.
    Integer(String),
    /// Digits with a decimal point: `1.5`, `.5`, `1.`.
    Decimal(String),
    /// A number with an exponent: `1e3`, `2.5E-3`.
    Double(String),
    /// `=`
    Eq,
    /// `!=` or `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Star,
    /// `/`
    Slash,
    /// `%`
    Percent,
    /// `||`
    Concat,
    /// `->`
    Arrow,
    /// `=>`
    FatArrow,
    /// `:=`
    Assign,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `,`
    Comma,
    /// `.`
    Dot,
    /// `;`
    Semicolon,
    /// `:`
    Colon,
    /// The end of the text; always the last token.
    Eof,
}

/// A token with where it is in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    /// Line and column of the token's first char.
    pub pos: Pos,
    /// Byte offset of the token's first char.
    pub start: usize,
    /// Byte offset just past the token's last char.
    pub end: usize,
}

/// A text that cannot be split into tokens: an unterminated string,
/// comment or quoted identifier, a malformed number or a stray character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

impl std::error::Error for LexError {}

/// Splits `text` into tokens; the last token is always [`TokenKind::Eof`].
pub fn tokenize(text: &str) -> Result<Vec<Token>, LexError> {
    let mut lexer = Lexer {
        src: text,
        off: 0,
        line: 1,
        col: 1,
    };
    let mut tokens = Vec::new();
    loop {
        lexer.skip_trivia()?;
        let start = lexer.off;
        let pos = lexer.pos();
        let Some(c) = lexer.peek() else {
            tokens.push(Token {
                kind: TokenKind::Eof,
                pos,
                start,
                end: start,
            });
            return Ok(tokens);
        };
        let kind = lexer.token(c, pos)?;
        tokens.push(Token {
            kind,
            pos,
            start,
            end: lexer.off,
        });
    }
}

/// Whether `c` can start an unquoted identifier.
pub fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// Whether `c` can continue an unquoted identifier.
pub fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '@'
}

struct Lexer<'a> {
    src: &'a str,
    off: usize,
    line: u32,
    col: u32,
}

impl Lexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn rest(&self) -> &str {
        self.src.get(self.off..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_nth(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.off += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn error<T>(pos: Pos, message: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            pos,
            message: message.into(),
        })
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), LexError> {
        loop {
            match (self.peek(), self.peek_nth(1)) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('-'), Some('-')) => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                (Some('/'), Some('*')) => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('*') if self.peek() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                            None => {
                                return Self::error(
                                    start,
                                    format!(
                                        "Syntax Error: unterminated comment starting at {start}: \
                                         close it with */"
                                    ),
                                )
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// Lexes one token starting with `c` (not yet consumed).
    fn token(&mut self, c: char, pos: Pos) -> Result<TokenKind, LexError> {
        use TokenKind as T;
        if is_ident_start(c) {
            let start = self.off;
            while self.peek().is_some_and(is_ident_char) {
                self.bump();
            }
            let word = self.src.get(start..self.off).unwrap_or("");
            return Ok(T::Word(word.to_uppercase()));
        }
        if c.is_ascii_digit() || (c == '.' && self.peek_nth(1).is_some_and(|d| d.is_ascii_digit()))
        {
            return self.number(pos);
        }
        self.bump();
        let next = self.peek();
        let two = |lexer: &mut Self, kind: T| {
            lexer.bump();
            Ok(kind)
        };
        match (c, next) {
            ('\'', _) => self.string(pos),
            ('`', _) | ('"', _) => self.quoted_ident(c, pos),
            ('=', Some('>')) => two(self, T::FatArrow),
            ('=', _) => Ok(T::Eq),
            ('!', Some('=')) => two(self, T::NotEq),
            ('<', Some('>')) => two(self, T::NotEq),
            ('<', Some('=')) => two(self, T::LtEq),
            ('<', _) => Ok(T::Lt),
            ('>', Some('=')) => two(self, T::GtEq),
            ('>', _) => Ok(T::Gt),
            ('-', Some('>')) => two(self, T::Arrow),
            ('-', _) => Ok(T::Minus),
            ('+', _) => Ok(T::Plus),
            ('*', _) => Ok(T::Star),
            ('/', _) => Ok(T::Slash),
            ('%', _) => Ok(T::Percent),
            ('|', Some('|')) => two(self, T::Concat),
            (':', Some('=')) => two(self, T::Assign),
            (':', _) => Ok(T::Colon),
            ('(', _) => Ok(T::LParen),
            (')', _) => Ok(T::RParen),
            ('[', _) => Ok(T::LBracket),
            (']', _) => Ok(T::RBracket),
            (',', _) => Ok(T::Comma),
            ('.', _) => Ok(T::Dot),
            (';', _) => Ok(T::Semicolon),
            ('!', _) => Self::error(
                pos,
                "Syntax Error: unexpected character '!'; use NOT for negation or != for \
                 inequality",
            ),
            ('|', _) => Self::error(
                pos,
                "Syntax Error: unexpected character '|'; use || to concatenate or OR for a \
                 logical or",
            ),
            ('&', _) => Self::error(
                pos,
                "Syntax Error: unexpected character '&'; use AND for a logical and",
            ),
            ('$', Some('{')) => Self::error(
                pos,
                "Syntax Error: unexpected '${': variable references must be substituted \
                 before parsing (is the variable defined?)",
            ),
            (c, _) => Self::error(
                pos,
                format!("Syntax Error: unexpected character {}", quote_char(c)),
            ),
        }
    }

    fn number(&mut self, pos: Pos) -> Result<TokenKind, LexError> {
        let start = self.off;
        let digits = |lexer: &mut Self| {
            while lexer.peek().is_some_and(|c| c.is_ascii_digit()) {
                lexer.bump();
            }
        };
        digits(self);
        let mut decimal = false;
        if self.peek() == Some('.') && self.peek_nth(1) != Some('.') {
            decimal = true;
            self.bump();
            digits(self);
        }
        let mut exponent = false;
        if matches!(self.peek(), Some('e' | 'E')) {
            let has_digits = match self.peek_nth(1) {
                Some(d) if d.is_ascii_digit() => true,
                Some('+' | '-') => self.peek_nth(2).is_some_and(|d| d.is_ascii_digit()),
                _ => false,
            };
            if has_digits {
                exponent = true;
                self.bump();
                if matches!(self.peek(), Some('+' | '-')) {
                    self.bump();
                }
                digits(self);
            }
        }
        let text = self.src.get(start..self.off).unwrap_or("").to_string();
        // Digits then letters, as ksqlDB's grammar allows: a name (`AS 1R`).
        if !decimal && !exponent && self.peek().is_some_and(is_ident_char) {
            while self.peek().is_some_and(is_ident_char) {
                self.bump();
            }
            let all = self.src.get(start..self.off).unwrap_or("");
            return Ok(TokenKind::Word(all.to_ascii_uppercase()));
        }
        if self.peek().is_some_and(is_ident_char) {
            while self.peek().is_some_and(is_ident_char) {
                self.bump();
            }
            let all = self.src.get(start..self.off).unwrap_or("");
            return Self::error(
                pos,
                format!(
                    "Syntax Error: malformed number '{all}': identifiers cannot start with a \
                     digit; quote it as `{all}` if it is a name"
                ),
            );
        }
        Ok(if exponent {
            TokenKind::Double(text)
        } else if decimal {
            TokenKind::Decimal(text)
        } else {
            TokenKind::Integer(text)
        })
    }

    /// A string after its opening quote.
    fn string(&mut self, pos: Pos) -> Result<TokenKind, LexError> {
        let mut value = String::new();
        loop {
            match self.bump() {
                Some('\'') if self.peek() == Some('\'') => {
                    self.bump();
                    value.push('\'');
                }
                Some('\'') => return Ok(TokenKind::String(value)),
                Some(c) => value.push(c),
                None => {
                    return Self::error(
                        pos,
                        format!(
                            "Syntax Error: unterminated string literal starting at {pos}: \
                             close it with ' (write '' for a quote inside a string)"
                        ),
                    )
                }
            }
        }
    }

    /// A quoted identifier after its opening `quote`.
    fn quoted_ident(&mut self, quote: char, pos: Pos) -> Result<TokenKind, LexError> {
        let mut value = String::new();
        loop {
            match self.bump() {
                Some(c) if c == quote && self.peek() == Some(quote) => {
                    self.bump();
                    value.push(quote);
                }
                Some(c) if c == quote => {
                    if value.is_empty() {
                        return Self::error(
                            pos,
                            format!("Syntax Error: empty quoted identifier {quote}{quote}"),
                        );
                    }
                    return Ok(TokenKind::QuotedIdent(value));
                }
                Some(c) => value.push(c),
                None => {
                    return Self::error(
                        pos,
                        format!(
                            "Syntax Error: unterminated quoted identifier starting at {pos}: \
                             close it with {quote}"
                        ),
                    )
                }
            }
        }
    }
}

fn quote_char(c: char) -> String {
    if c.is_control() {
        format!("{:?}", c)
    } else {
        format!("'{c}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenKind as T;

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokenize(text)
            .expect("lexes")
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn word(w: &str) -> TokenKind {
        T::Word(w.to_string())
    }

    #[test]
    fn words_are_upper_cased_and_quoted_identifiers_keep_case() {
        assert_eq!(
            kinds("select `MixedCase` \"Other\" app_id"),
            vec![
                word("SELECT"),
                T::QuotedIdent("MixedCase".into()),
                T::QuotedIdent("Other".into()),
                word("APP_ID"),
                T::Eof
            ]
        );
        assert_eq!(
            kinds("`a``b` \"c\"\"d\""),
            vec![
                T::QuotedIdent("a`b".into()),
                T::QuotedIdent("c\"d".into()),
                T::Eof
            ]
        );
    }

    #[test]
    fn strings_unescape_doubled_quotes() {
        assert_eq!(
            kinds("'it''s' ''"),
            vec![T::String("it's".into()), T::String(String::new()), T::Eof]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            kinds("1 1.5 .5 2. 1e3 2.5E-3 7e+2"),
            vec![
                T::Integer("1".into()),
                T::Decimal("1.5".into()),
                T::Decimal(".5".into()),
                T::Decimal("2.".into()),
                T::Double("1e3".into()),
                T::Double("2.5E-3".into()),
                T::Double("7e+2".into()),
                T::Eof
            ]
        );
        // Digits then letters make a name, as in ksqlDB; not after a
        // fraction or an exponent.
        assert_eq!(
            kinds("AS 1R 2_x"),
            vec![
                T::Word("AS".into()),
                T::Word("1R".into()),
                T::Word("2_X".into()),
                T::Eof
            ]
        );
        let err = tokenize("SELECT 1.5abc").unwrap_err();
        assert_eq!(err.pos, Pos { line: 1, col: 8 });
        assert!(err.message.contains("malformed number '1.5abc'"), "{err}");
    }

    #[test]
    fn operators() {
        assert_eq!(
            kinds("= != <> < <= > >= + - * / % || -> => := ( ) [ ] , . ; :"),
            vec![
                T::Eq,
                T::NotEq,
                T::NotEq,
                T::Lt,
                T::LtEq,
                T::Gt,
                T::GtEq,
                T::Plus,
                T::Minus,
                T::Star,
                T::Slash,
                T::Percent,
                T::Concat,
                T::Arrow,
                T::FatArrow,
                T::Assign,
                T::LParen,
                T::RParen,
                T::LBracket,
                T::RBracket,
                T::Comma,
                T::Dot,
                T::Semicolon,
                T::Colon,
                T::Eof
            ]
        );
        // `>>` closes two nested types.
        assert_eq!(
            kinds("ARRAY<MAP<STRING,INT>>"),
            vec![
                word("ARRAY"),
                T::Lt,
                word("MAP"),
                T::Lt,
                word("STRING"),
                T::Comma,
                word("INT"),
                T::Gt,
                T::Gt,
                T::Eof
            ]
        );
        assert_eq!(
            kinds("a-1"),
            vec![word("A"), T::Minus, T::Integer("1".into()), T::Eof]
        );
    }

    #[test]
    fn comments_are_skipped() {
        assert_eq!(
            kinds("-- a comment\nSELECT /* inline\n comment */ x -- trailing"),
            vec![word("SELECT"), word("X"), T::Eof]
        );
    }

    #[test]
    fn positions_are_one_based_and_count_chars() {
        let toks = tokenize("SELECT\n  'é', x\n\tFROM").expect("lexes");
        let pos: Vec<_> = toks.iter().map(|t| (t.pos.line, t.pos.col)).collect();
        assert_eq!(pos, vec![(1, 1), (2, 3), (2, 6), (2, 8), (3, 2), (3, 6)]);
        assert_eq!(toks[1].start, 9);
        assert_eq!(toks[1].end, 13);
    }

    #[test]
    fn unterminated_things_report_where_they_start() {
        let err = tokenize("SELECT\n  'abc FROM x").unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, col: 3 });
        assert!(err
            .message
            .contains("unterminated string literal starting at line 2:3"));
        let err = tokenize("x /* never closed").unwrap_err();
        assert_eq!(err.pos, Pos { line: 1, col: 3 });
        assert!(err.message.contains("unterminated comment"));
        let err = tokenize("`abc").unwrap_err();
        assert!(err.message.contains("unterminated quoted identifier"));
        let err = tokenize("``").unwrap_err();
        assert!(err.message.contains("empty quoted identifier"));
    }

    #[test]
    fn stray_characters_are_named() {
        let err = tokenize("a # b").unwrap_err();
        assert_eq!(err.pos, Pos { line: 1, col: 3 });
        assert!(err.message.contains("'#'"), "{err}");
        assert!(tokenize("a & b").unwrap_err().message.contains("AND"));
        assert!(tokenize("${x}").unwrap_err().message.contains("variable"));
    }
}
