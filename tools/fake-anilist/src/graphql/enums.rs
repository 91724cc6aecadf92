//! AniList's GraphQL enums, named exactly as AniList names them, and the mapping from the
//! world's raw text: unknown text renders as null (format/status) or OTHER (relations).

use async_graphql::Enum;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum MediaType {
    Anime,
    Manga,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum MediaFormat {
    Tv,
    TvShort,
    Movie,
    Special,
    Ova,
    Ona,
    Music,
    Manga,
    Novel,
    OneShot,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum MediaStatus {
    Finished,
    Releasing,
    NotYetReleased,
    Cancelled,
    Hiatus,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum MediaSeason {
    Winter,
    Spring,
    Summer,
    Fall,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum MediaRelation {
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
}

impl MediaType {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "ANIME" => Self::Anime,
            "MANGA" => Self::Manga,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anime => "ANIME",
            Self::Manga => "MANGA",
        }
    }
}

impl MediaFormat {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "TV" => Self::Tv,
            "TV_SHORT" => Self::TvShort,
            "MOVIE" => Self::Movie,
            "SPECIAL" => Self::Special,
            "OVA" => Self::Ova,
            "ONA" => Self::Ona,
            "MUSIC" => Self::Music,
            "MANGA" => Self::Manga,
            "NOVEL" => Self::Novel,
            "ONE_SHOT" => Self::OneShot,
            _ => return None,
        })
    }
}

impl MediaStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "FINISHED" => Self::Finished,
            "RELEASING" => Self::Releasing,
            "NOT_YET_RELEASED" => Self::NotYetReleased,
            "CANCELLED" => Self::Cancelled,
            "HIATUS" => Self::Hiatus,
            _ => return None,
        })
    }
}

impl MediaSeason {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "WINTER" => Self::Winter,
            "SPRING" => Self::Spring,
            "SUMMER" => Self::Summer,
            "FALL" => Self::Fall,
            _ => return None,
        })
    }
}

impl MediaRelation {
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
            "SOURCE" => Self::Source,
            "COMPILATION" => Self::Compilation,
            "CONTAINS" => Self::Contains,
            _ => Self::Other,
        }
    }
}
