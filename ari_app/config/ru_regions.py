"""Russia's federal subjects -> IANA time zone, for the regions of the numbering-plan registry.

The registry's "Регион" column names a subject in many spellings ("Хабаровский Край",
"г. Москва и Московская обл.", "Кемеровская область - Кузбасс", "Ханты - Мансийский -
Югра АО", "Красноярский край|Таймырский Долгано-Ненецкий р-н"), so a region is matched by
word stems, longest first (so "Ямало-Ненецкий" is not read as "Ненецкий"). A subject that
spans zones gets the zone of its capital and most of its people (Yakutia: Yakutsk,
Sakhalin: Yuzhno-Sakhalinsk). Zones as of tzdata 2020 (Volgograd back on UTC+3).
"""
from __future__ import annotations

import re

# (subject, IANA zone, stems): a stem matches at the start of a word of the lower-cased name.
SUBJECTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # UTC+2
    ("Калининградская область", "Europe/Kaliningrad", ("калининград",)),
    # UTC+3
    ("г. Москва", "Europe/Moscow", ("москва", "г.москва")),
    ("Московская область", "Europe/Moscow", ("московск",)),
    ("г. Санкт-Петербург", "Europe/Moscow", ("санкт-петербург", "петербург")),
    ("Ленинградская область", "Europe/Moscow", ("ленинградск",)),
    ("Республика Адыгея", "Europe/Moscow", ("адыге",)),
    ("Республика Дагестан", "Europe/Moscow", ("дагестан",)),
    ("Республика Ингушетия", "Europe/Moscow", ("ингуш",)),
    ("Кабардино-Балкарская Республика", "Europe/Moscow", ("кабардин",)),
    ("Республика Калмыкия", "Europe/Moscow", ("калмык",)),
    ("Карачаево-Черкесская Республика", "Europe/Moscow", ("карачаев",)),
    ("Республика Карелия", "Europe/Moscow", ("карел",)),
    ("Республика Коми", "Europe/Moscow", ("коми",)),
    ("Республика Марий Эл", "Europe/Moscow", ("марий",)),
    ("Республика Мордовия", "Europe/Moscow", ("мордов",)),
    ("Республика Северная Осетия - Алания", "Europe/Moscow", ("осети", "алания")),
    ("Республика Татарстан", "Europe/Moscow", ("татарстан",)),
    ("Чеченская Республика", "Europe/Moscow", ("чеченск", "чечня")),
    ("Чувашская Республика", "Europe/Moscow", ("чуваш",)),
    ("Краснодарский край", "Europe/Moscow", ("краснодарск",)),
    ("Ставропольский край", "Europe/Moscow", ("ставропольск",)),
    ("Архангельская область", "Europe/Moscow", ("архангельск",)),
    ("Ненецкий автономный округ", "Europe/Moscow", ("ненецк",)),
    ("Белгородская область", "Europe/Moscow", ("белгородск",)),
    ("Брянская область", "Europe/Moscow", ("брянск",)),
    ("Владимирская область", "Europe/Moscow", ("владимирск",)),
    ("Вологодская область", "Europe/Moscow", ("вологодск",)),
    ("Воронежская область", "Europe/Moscow", ("воронежск",)),
    ("Ивановская область", "Europe/Moscow", ("ивановск",)),
    ("Калужская область", "Europe/Moscow", ("калужск",)),
    ("Костромская область", "Europe/Moscow", ("костромск",)),
    ("Курская область", "Europe/Moscow", ("курск",)),
    ("Липецкая область", "Europe/Moscow", ("липецк",)),
    ("Мурманская область", "Europe/Moscow", ("мурманск",)),
    ("Нижегородская область", "Europe/Moscow", ("нижегородск",)),
    ("Новгородская область", "Europe/Moscow", ("новгородск",)),
    ("Орловская область", "Europe/Moscow", ("орловск",)),
    ("Пензенская область", "Europe/Moscow", ("пензенск",)),
    ("Псковская область", "Europe/Moscow", ("псковск",)),
    ("Ростовская область", "Europe/Moscow", ("ростовск",)),
    ("Рязанская область", "Europe/Moscow", ("рязанск",)),
    ("Смоленская область", "Europe/Moscow", ("смоленск",)),
    ("Тамбовская область", "Europe/Moscow", ("тамбовск",)),
    ("Тверская область", "Europe/Moscow", ("тверск",)),
    ("Тульская область", "Europe/Moscow", ("тульск",)),
    ("Ярославская область", "Europe/Moscow", ("ярославск",)),
    ("Кировская область", "Europe/Kirov", ("кировск",)),
    ("Волгоградская область", "Europe/Volgograd", ("волгоградск",)),
    ("Республика Крым", "Europe/Simferopol", ("крым",)),
    ("г. Севастополь", "Europe/Simferopol", ("севастопол",)),
    # as the registry lists them since 2023
    ("Донецкая Народная Республика", "Europe/Moscow", ("донецк",)),
    ("Луганская Народная Республика", "Europe/Moscow", ("луганск",)),
    ("Запорожская область", "Europe/Moscow", ("запорожск",)),
    ("Херсонская область", "Europe/Moscow", ("херсонск",)),
    # UTC+4
    ("Самарская область", "Europe/Samara", ("самарск",)),
    ("Удмуртская Республика", "Europe/Samara", ("удмурт",)),
    ("Астраханская область", "Europe/Astrakhan", ("астраханск",)),
    ("Саратовская область", "Europe/Saratov", ("саратовск",)),
    ("Ульяновская область", "Europe/Ulyanovsk", ("ульяновск",)),
    # UTC+5
    ("Республика Башкортостан", "Asia/Yekaterinburg", ("башкортостан", "башкирия")),
    ("Пермский край", "Asia/Yekaterinburg", ("пермск", "коми-пермяц")),
    ("Курганская область", "Asia/Yekaterinburg", ("курганск",)),
    ("Оренбургская область", "Asia/Yekaterinburg", ("оренбургск",)),
    ("Свердловская область", "Asia/Yekaterinburg", ("свердловск",)),
    ("Тюменская область", "Asia/Yekaterinburg", ("тюменск",)),
    ("Челябинская область", "Asia/Yekaterinburg", ("челябинск",)),
    ("Ханты-Мансийский автономный округ - Югра", "Asia/Yekaterinburg", ("ханты", "югра")),
    ("Ямало-Ненецкий автономный округ", "Asia/Yekaterinburg", ("ямало-ненецк", "ямал")),
    # UTC+6
    ("Омская область", "Asia/Omsk", ("омск",)),
    # UTC+7
    ("Новосибирская область", "Asia/Novosibirsk", ("новосибирск",)),
    ("Томская область", "Asia/Tomsk", ("томск",)),
    ("Алтайский край", "Asia/Barnaul", ("алтайск",)),
    ("Республика Алтай", "Asia/Barnaul", ("алтай",)),
    ("Кемеровская область - Кузбасс", "Asia/Novokuznetsk", ("кемеровск", "кузбасс")),
    ("Красноярский край", "Asia/Krasnoyarsk", ("красноярск", "таймыр", "долгано-ненецк", "эвенкийск")),
    ("Республика Хакасия", "Asia/Krasnoyarsk", ("хакас",)),
    ("Республика Тыва", "Asia/Krasnoyarsk", ("тыва", "тува")),
    # UTC+8
    ("Иркутская область", "Asia/Irkutsk", ("иркутск", "усть-ордынск")),
    ("Республика Бурятия", "Asia/Irkutsk", ("бурятия",)),
    # UTC+9
    ("Забайкальский край", "Asia/Chita", ("забайкальск", "читинск", "агинск")),
    ("Республика Саха (Якутия)", "Asia/Yakutsk", ("саха", "якути")),
    ("Амурская область", "Asia/Yakutsk", ("амурск",)),
    # UTC+10
    ("Приморский край", "Asia/Vladivostok", ("приморск",)),
    ("Хабаровский край", "Asia/Vladivostok", ("хабаровск",)),
    ("Еврейская автономная область", "Asia/Vladivostok", ("еврейск",)),
    # UTC+11
    ("Магаданская область", "Asia/Magadan", ("магаданск",)),
    ("Сахалинская область", "Asia/Sakhalin", ("сахалинск",)),
    # UTC+12
    ("Камчатский край", "Asia/Kamchatka", ("камчатск", "корякск")),
    ("Чукотский автономный округ", "Asia/Kamchatka", ("чукотск",)),
)

# Longest stem first: "ямало-ненецк" is taken (and removed) before "ненецк" could match it.
_STEMS = sorted(((stem, zone) for _, zone, stems in SUBJECTS for stem in stems), key=lambda s: -len(s[0]))
_PATTERNS = [(re.compile(r"(?<![а-яa-z])" + re.escape(stem)), zone) for stem, zone in _STEMS]


def _normal(name: str) -> str:
    text = name.lower().replace("ё", "е")
    text = re.sub(r"\s*-\s*", "-", text)  # "Ханты - Мансийский" -> "ханты-мансийский"
    return re.sub(r"\s+", " ", text)


def zone_for_region(name: str) -> str | None:
    """The IANA zone of a registry region name, or None when it names no subject or
    subjects in different zones.

    >>> zone_for_region("Хабаровский Край"), zone_for_region("г. Москва и Московская обл.")
    ('Asia/Vladivostok', 'Europe/Moscow')
    >>> zone_for_region("Ямало-Ненецкий АО"), zone_for_region("Российская Федерация")
    ('Asia/Yekaterinburg', None)
    """
    text = _normal(name)
    zones = set()
    for pattern, zone in _PATTERNS:
        text, found = pattern.subn(" ", text)
        if found:
            zones.add(zone)
    return zones.pop() if len(zones) == 1 else None
