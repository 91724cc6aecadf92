//! The records `franchise` imports: an anime, its typed relation edges, and the id that names it.
//! Upstream parsing produces these; the store writes them; the walk reads their edges.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An AniList media id. AniList ids are positive 32-bit integers, so anything else is refused
/// at the edge (CLI, config, upstream) instead of travelling through the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct AnimeId(u32);

impl AnimeId {
    /// The largest id AniList can hand out (its `Int` is a signed 32-bit integer).
    pub const MAX: u32 = i32::MAX as u32;

    pub fn new(raw: i64) -> Result<Self, InvalidAnimeId> {
        if raw >= 1 && raw <= i64::from(Self::MAX) {
            Ok(Self(raw as u32))
        } else {
            Err(InvalidAnimeId(raw.to_string()))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for AnimeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<AnimeId> for i64 {
    fn from(id: AnimeId) -> i64 {
        i64::from(id.0)
    }
}

impl TryFrom<i64> for AnimeId {
    type Error = InvalidAnimeId;
    fn try_from(raw: i64) -> Result<Self, Self::Error> {
        Self::new(raw)
    }
}

/// Plain decimal digits only, as AniList writes ids: no sign, no spaces, no leading zero.
impl FromStr for AnimeId {
    type Err = InvalidAnimeId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let plain = !s.is_empty()
            && s.len() <= 10
            && s.bytes().all(|b| b.is_ascii_digit())
            && !s.starts_with('0');
        if !plain {
            return Err(InvalidAnimeId(s.to_string()));
        }
        let raw: i64 = s.parse().map_err(|_| InvalidAnimeId(s.to_string()))?;
        Self::new(raw).map_err(|_| InvalidAnimeId(s.to_string()))
    }
}

/// A value that cannot be an AniList id; the message says what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid anime id {0:?}: expected plain decimal digits from 1 to 2147483647 (an AniList id)"
)]
pub struct InvalidAnimeId(pub String);

/// AniList's `MediaType`. Anything unforeseen is kept as raw text rather than refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaKind {
    Anime,
    Manga,
    Other(String),
}

impl MediaKind {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "ANIME" => Self::Anime,
            "MANGA" => Self::Manga,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Anime => "ANIME",
            Self::Manga => "MANGA",
            Self::Other(raw) => raw,
        }
    }
}

/// AniList's `MediaRelation` (asked with `version: 2`). Unknown values are kept verbatim in
/// `Unknown` so a new upstream enum value is stored, never an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RelationType {
    Adaptation,
    Prequel,
    Sequel,
    Parent,
    SideStory,
    Character,
    Summary,
    Alternative,
    SpinOff,
    Other,
    Source,
    Compilation,
    Contains,
    Unknown(String),
}

impl RelationType {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "ADAPTATION" => Self::Adaptation,
            "PREQUEL" => Self::Prequel,
            "SEQUEL" => Self::Sequel,
            "PARENT" => Self::Parent,
            "SIDE_STORY" => Self::SideStory,
            "CHARACTER" => Self::Character,
            "SUMMARY" => Self::Summary,
            "ALTERNATIVE" => Self::Alternative,
            "SPIN_OFF" => Self::SpinOff,
            "OTHER" => Self::Other,
            "SOURCE" => Self::Source,
            "COMPILATION" => Self::Compilation,
            "CONTAINS" => Self::Contains,
            other => Self::Unknown(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Adaptation => "ADAPTATION",
            Self::Prequel => "PREQUEL",
            Self::Sequel => "SEQUEL",
            Self::Parent => "PARENT",
            Self::SideStory => "SIDE_STORY",
            Self::Character => "CHARACTER",
            Self::Summary => "SUMMARY",
            Self::Alternative => "ALTERNATIVE",
            Self::SpinOff => "SPIN_OFF",
            Self::Other => "OTHER",
            Self::Source => "SOURCE",
            Self::Compilation => "COMPILATION",
            Self::Contains => "CONTAINS",
            Self::Unknown(raw) => raw,
        }
    }

    /// The relation as seen from the other end, when that is unambiguous.
    ///
    /// PARENT has no inverse: the child may be a side story, a spin-off or a summary, and
    /// guessing would store a wrong edge that an observed one must later correct.
    pub fn inverse(&self) -> Option<Self> {
        Some(match self {
            Self::Sequel => Self::Prequel,
            Self::Prequel => Self::Sequel,
            Self::Source => Self::Adaptation,
            Self::Adaptation => Self::Source,
            Self::Alternative => Self::Alternative,
            Self::Character => Self::Character,
            Self::Compilation => Self::Contains,
            Self::Contains => Self::Compilation,
            Self::SideStory | Self::SpinOff | Self::Summary => Self::Parent,
            Self::Parent | Self::Other | Self::Unknown(_) => return None,
        })
    }

    /// The relation types a franchise walk follows by default. CHARACTER, OTHER, SOURCE and
    /// ADAPTATION are stored but not followed: they chain unrelated franchises together.
    pub const FOLLOWED_BY_DEFAULT: [RelationType; 9] = [
        Self::Sequel,
        Self::Prequel,
        Self::Parent,
        Self::SideStory,
        Self::SpinOff,
        Self::Summary,
        Self::Alternative,
        Self::Compilation,
        Self::Contains,
    ];
}

impl fmt::Display for RelationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// AniList's title triple. Any of them may be missing upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Title {
    pub romaji: Option<String>,
    pub english: Option<String>,
    pub native: Option<String>,
}

impl Title {
    /// The title to show a person: English if known, else romaji, else native.
    pub fn display(&self) -> Option<&str> {
        self.english
            .as_deref()
            .or(self.romaji.as_deref())
            .or(self.native.as_deref())
    }
}

/// AniList's `FuzzyDate`: any part may be unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FuzzyDate {
    pub year: Option<i32>,
    pub month: Option<u8>,
    pub day: Option<u8>,
}

impl FuzzyDate {
    /// A date as the store keeps it (month and day as integers): a month or day out of range
    /// reads as unknown, not as an error.
    pub(crate) fn from_stored(year: Option<i32>, month: Option<i32>, day: Option<i32>) -> Self {
        let small = |raw: Option<i32>| raw.and_then(|v| u8::try_from(v).ok());
        Self {
            year,
            month: small(month),
            day: small(day),
        }
    }
}

/// The far end of a relation edge, as much of it as the edge carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedMedia {
    pub id: AnimeId,
    pub kind: MediaKind,
    /// AniList's `MediaFormat` as raw text (TV, MOVIE, MANGA, NOVEL, …).
    pub format: Option<String>,
    pub status: Option<String>,
    pub title: Title,
}

/// One observed relation edge of an anime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationEdge {
    /// AniList's id of the edge itself, when it was asked for.
    pub edge_id: Option<i64>,
    pub relation: RelationType,
    pub node: RelatedMedia,
}

/// One anime as fetched from AniList, with its relation edges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anime {
    pub id: AnimeId,
    pub id_mal: Option<i64>,
    pub kind: MediaKind,
    pub title: Title,
    pub format: Option<String>,
    pub status: Option<String>,
    pub episodes: Option<i32>,
    pub season: Option<String>,
    pub season_year: Option<i32>,
    pub start_date: FuzzyDate,
    pub relations: Vec<RelationEdge>,
}

/// Every anime whose stored rows a write of `anime` changes: the anime themselves, and the far
/// ends of their relations, whose derived inverse rows are rewritten with them. What a read
/// cache must drop after such a write (in this process, or in another one told of it).
pub(crate) fn rewritten_by(anime: &[Anime]) -> impl Iterator<Item = AnimeId> + '_ {
    anime
        .iter()
        .flat_map(|a| std::iter::once(a.id).chain(a.relations.iter().map(|e| e.node.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_outside_anilist_range_are_refused_with_the_value_named() {
        let bad_ids = [
            "0",
            "-1",
            "abc",
            "99999999999999999999",
            "2147483648",
            "",
            "+5",
            " 7",
            "7 ",
            "00005",
            "1e3",
            "0x10",
            "٣",
        ];
        for bad in bad_ids {
            let err = bad.parse::<AnimeId>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
            assert!(err.to_string().contains("1 to 2147483647"), "{err}");
        }
        assert_eq!("16498".parse::<AnimeId>().unwrap().get(), 16498);
        assert_eq!("1".parse::<AnimeId>().unwrap().get(), 1);
        assert_eq!("2147483647".parse::<AnimeId>().unwrap().get(), AnimeId::MAX);
    }

    #[test]
    fn inverses_follow_the_design_table() {
        use RelationType::*;
        assert_eq!(Sequel.inverse(), Some(Prequel));
        assert_eq!(Prequel.inverse(), Some(Sequel));
        assert_eq!(Source.inverse(), Some(Adaptation));
        assert_eq!(Adaptation.inverse(), Some(Source));
        assert_eq!(Alternative.inverse(), Some(Alternative));
        assert_eq!(Character.inverse(), Some(Character));
        assert_eq!(Compilation.inverse(), Some(Contains));
        assert_eq!(Contains.inverse(), Some(Compilation));
        for child in [SideStory, SpinOff, Summary] {
            assert_eq!(child.inverse(), Some(Parent));
        }
        assert_eq!(Parent.inverse(), None);
        assert_eq!(Other.inverse(), None);
        assert_eq!(RelationType::parse("TIME_TRAVEL").inverse(), None);
    }

    #[test]
    fn unknown_enum_values_are_kept_verbatim() {
        let rel = RelationType::parse("TIME_TRAVEL");
        assert_eq!(rel, RelationType::Unknown("TIME_TRAVEL".into()));
        assert_eq!(rel.as_str(), "TIME_TRAVEL");
        assert_eq!(MediaKind::parse("NOVELLA").as_str(), "NOVELLA");
        for known in RelationType::FOLLOWED_BY_DEFAULT {
            assert_eq!(RelationType::parse(known.as_str()), known);
        }
    }
}
