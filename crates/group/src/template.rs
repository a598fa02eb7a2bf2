//! A URL that names members' properties: `http://{mq1.LISTEN}/redundancy`.
//! Parsed once when the definition is read (every placeholder must name a
//! member); rendered with the properties the grids report at the attempt.

use serde::{Deserialize, Serialize};

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    /// `{member.PROPERTY}`.
    Property {
        member: String,
        property: String,
    },
}

/// A parsed template; displays as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{` at byte {at} is never closed; write {{member.PROPERTY}}")]
    Unclosed { at: usize },
    #[error(
        "`{{{inner}}}` is not of the form {{member.PROPERTY}} (a member's name, a dot, a property of letters, digits and _)"
    )]
    Malformed { inner: String },
    #[error("`}}` at byte {at} closes nothing")]
    StrayClose { at: usize },
    #[error("the member {member} has no property {property}")]
    NoProperty { member: String, property: String },
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        let mut parts = vec![];
        let mut text = String::new();
        let mut rest = s;
        let mut offset = 0;
        while let Some(i) = rest.find(['{', '}']) {
            if rest.as_bytes()[i] == b'}' {
                return Err(TemplateError::StrayClose { at: offset + i });
            }
            text.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let Some(end) = after.find('}') else {
                return Err(TemplateError::Unclosed { at: offset + i });
            };
            let inner = &after[..end];
            let (member, property) = inner
                .split_once('.')
                .filter(|(m, p)| {
                    operation_model::name::check("member", m).is_ok()
                        && !p.is_empty()
                        && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .ok_or_else(|| TemplateError::Malformed {
                    inner: inner.to_owned(),
                })?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Property {
                member: member.to_owned(),
                property: property.to_owned(),
            });
            offset += i + 1 + end + 1;
            rest = &after[end + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    /// The members the template names, in order, once each.
    pub fn members(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = vec![];
        for p in &self.parts {
            if let Part::Property { member, .. } = p
                && !seen.contains(&member.as_str())
            {
                seen.push(member);
            }
        }
        seen
    }

    /// The text with each placeholder replaced by `lookup(member, property)`.
    pub fn render(
        &self,
        lookup: impl Fn(&str, &str) -> Option<String>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Property { member, property } => {
                    out.push_str(&lookup(member, property).ok_or_else(|| {
                        TemplateError::NoProperty {
                            member: member.clone(),
                            property: property.clone(),
                        }
                    })?)
                }
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.parts {
            match p {
                Part::Text(t) => f.write_str(t)?,
                Part::Property { member, property } => write!(f, "{{{member}.{property}}}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Template, D::Error> {
        let s = String::deserialize(d)?;
        Template::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_name_members_properties_and_render_from_them() {
        let t =
            Template::parse("http://{mq1.LISTEN}/redundancy?of={mq2.LISTEN}&again={mq1.LISTEN}")
                .unwrap();
        assert_eq!(t.members(), ["mq1", "mq2"]);
        assert_eq!(
            t.to_string(),
            "http://{mq1.LISTEN}/redundancy?of={mq2.LISTEN}&again={mq1.LISTEN}"
        );
        let url = t
            .render(|m, p| (p == "LISTEN").then(|| format!("{m}.example:80")))
            .unwrap();
        assert_eq!(
            url,
            "http://mq1.example:80/redundancy?of=mq2.example:80&again=mq1.example:80"
        );
        assert_eq!(
            t.render(|_, _| None).unwrap_err().to_string(),
            "the member mq1 has no property LISTEN"
        );
        assert_eq!(
            Template::parse("plain").unwrap().members(),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn malformed_placeholders_are_refused_saying_where_and_why() {
        for (bad, says) in [
            ("http://{mq1.LISTEN/x", "never closed"),
            ("http://{mq1}/x", "not of the form"),
            ("http://{1mq.LISTEN}/x", "not of the form"),
            ("http://{mq1.LIS TEN}/x", "not of the form"),
            ("http://mq1}/x", "closes nothing"),
        ] {
            let e = Template::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
