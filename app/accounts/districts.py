"""Shanghai's 16 districts, the only values a citizen's home district may take.

`code` is what we store and what clients send; `admin_code` is the national administrative
division code (GB/T 2260) for statistics that are joined with government data.
"""
from __future__ import annotations

from typing import NamedTuple


class District(NamedTuple):
    code: str
    zh: str
    en: str
    admin_code: str


DISTRICTS: tuple[District, ...] = (
    District("huangpu", "黄浦区", "Huangpu", "310101"),
    District("xuhui", "徐汇区", "Xuhui", "310104"),
    District("changning", "长宁区", "Changning", "310105"),
    District("jingan", "静安区", "Jing'an", "310106"),
    District("putuo", "普陀区", "Putuo", "310107"),
    District("hongkou", "虹口区", "Hongkou", "310109"),
    District("yangpu", "杨浦区", "Yangpu", "310110"),
    District("minhang", "闵行区", "Minhang", "310112"),
    District("baoshan", "宝山区", "Baoshan", "310113"),
    District("jiading", "嘉定区", "Jiading", "310114"),
    District("pudong", "浦东新区", "Pudong New Area", "310115"),
    District("jinshan", "金山区", "Jinshan", "310116"),
    District("songjiang", "松江区", "Songjiang", "310117"),
    District("qingpu", "青浦区", "Qingpu", "310118"),
    District("fengxian", "奉贤区", "Fengxian", "310120"),
    District("chongming", "崇明区", "Chongming", "310151"),
)

DISTRICT_CODES: frozenset[str] = frozenset(d.code for d in DISTRICTS)
