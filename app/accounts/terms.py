"""The privacy terms citizens consent to, in Chinese and English.

A change to what we collect or why is a new `TERMS_VERSION`: citizens are asked again
(`consents_required` in the sign-in answer) and a consent to an older version cannot be
granted any more (409 `terms_version_outdated`).
"""
from __future__ import annotations

TERMS_VERSION = "2026-11"
EFFECTIVE_FROM = "2026-11-01"

TITLE = {
    "zh": "上海碳普惠个人碳账户隐私政策",
    "en": "Shanghai Carbon Inclusion Personal Carbon Account — Privacy Terms",
}

TEXT_ZH = "\n".join((
    "本政策说明上海碳普惠平台（“我们”）在你使用个人碳账户时如何处理你的个人信息。",
    "",
    "一、我们收集什么",
    (
        "1. 登录标识：你使用微信、支付宝或随申办登录时，这些平台提供给我们的用户标识（如 openid）。"
        "我们不获取你的密码，也不保存微信会话密钥。"
    ),
    "2. 手机号：仅在你通过随申办登录并授权时获取，加密保存，对外展示时打码（如 138****1234）。",
    "3. 常住区（可选）：你自行选择的上海市辖区，用于区级统计和本区活动。",
    (
        "4. 低碳行为记录：合作单位（地铁、公交、共享单车、回收站点、电子票据平台等）报送的行为事实，以及你"
        "自行申报的行为和证明材料。"
    ),
    "5. 积分与兑换记录：积分的获得、使用、过期和冲正，优惠券的领取和核销。",
    "",
    "二、为什么收集",
    (
        "用于核算你的碳减排量、发放和管理积分、兑换权益、防范刷分作弊，以及形成去标识化的统计数据。我们只收集"
        "实现这些目的所必需的信息。"
    ),
    "",
    "三、出行轨迹类信息需单独同意",
    (
        "地铁、公交、骑行等出行记录属于行踪轨迹类敏感个人信息。我们只向合作单位获取行程事实（起止站点、距离、"
        "时间），不获取 GPS 轨迹。每一个出行场景都需要你另行单独同意；未同意的场景不会为你记录或计分。"
    ),
    "",
    "四、撤回同意",
    (
        "你可以随时在“我的—隐私设置”中撤回本政策或任一出行场景的同意，操作与同意一样简便。撤回后我们立即停"
        "止为你记录和计分；撤回前已完成的处理不受影响。撤回本政策的同意时，各出行场景的同意一并撤回。"
    ),
    "",
    "五、查阅、复制与导出",
    "你可以随时下载你的全部个人数据（JSON 格式）。",
    "",
    "六、删除与注销",
    (
        "你可以注销账户。注销后我们删除或不可逆地去标识化你的个人信息，仅保留不能识别到你的积分和减排总量用于"
        "统计。法律法规要求保存的审计记录按规定期限保存（不少于六个月）后删除。"
    ),
    "",
    "七、共享",
    (
        "商户只能看到核销所需的券信息，看不到你的手机号或登录标识。除法律法规要求外，未经你单独同意，我们不向"
        "第三方提供你的个人信息。"
    ),
    "",
    "八、安全",
    "个人信息加密存储、按最小权限访问，重要操作记入防篡改的审计日志。",
    "",
    "如有疑问，可通过小程序内“意见反馈”联系我们。",
))

TEXT_EN = "\n".join((
    (
        'These terms explain how the Shanghai Carbon Inclusion platform ("we") handles your personal '
        "information when you use the personal carbon account."
    ),
    "",
    "1. What we collect",
    (
        "(1) Sign-in identifiers: the user identifier (such as an openid) that WeChat, Alipay or Suishenban "
        "gives us when you sign in. We never get your password and we do not keep WeChat's session key."
    ),
    (
        "(2) Phone number: only when you sign in with Suishenban and allow it. It is stored encrypted and "
        "shown masked (e.g. 138****1234)."
    ),
    (
        "(3) Home district (optional): the Shanghai district you choose, for district statistics and local "
        "campaigns."
    ),
    (
        "(4) Low-carbon activity: facts reported by our partners (metro, bus, bike-share, recycling "
        "stations, e-invoice platforms and others) and activities you declare yourself with evidence."
    ),
    "(5) Points and rewards: points earned, spent, expired or reversed, and coupons claimed and used.",
    "",
    "2. Why",
    (
        "To calculate the emissions you avoided, credit and manage your points, let you redeem rewards, "
        "prevent fraud, and produce de-identified statistics. We collect only what these purposes need."
    ),
    "",
    "3. Travel data needs a separate consent",
    (
        "Trips by metro, bus or bike are whereabouts, which is sensitive personal information. We ask "
        "partners only for trip facts (stations, distance, times), never GPS traces. Each travel scenario "
        "needs its own separate consent; without it nothing is recorded or credited for that scenario."
    ),
    "",
    "4. Withdrawing consent",
    (
        'You can withdraw consent to these terms or to any travel scenario at any time under "Me > Privacy", '
        "as easily as you gave it. We stop recording and crediting at once; processing done before you "
        "withdrew is not affected. Withdrawing consent to these terms also withdraws every travel-scenario "
        "consent."
    ),
    "",
    "5. Access and export",
    "You can download all your personal data (JSON) at any time.",
    "",
    "6. Deletion and closing your account",
    (
        "You can close your account. We then delete or irreversibly de-identify your personal information, "
        "keeping only point and emission totals that cannot identify you, for statistics. Audit records the "
        "law requires are kept for the required period (at least six months), then deleted."
    ),
    "",
    "7. Sharing",
    (
        "Merchants see only what they need to redeem a coupon, never your phone number or sign-in "
        "identifiers. Except where the law requires it, we do not give your personal information to third "
        "parties without your separate consent."
    ),
    "",
    "8. Security",
    (
        "Personal information is encrypted at rest, accessed on a need-to-know basis, and important "
        "operations are recorded in a tamper-evident audit log."
    ),
    "",
    'Questions: use "Feedback" in the mini-app.',
))

TEXT = {"zh": TEXT_ZH, "en": TEXT_EN}


def current_terms() -> dict[str, object]:
    return {"version": TERMS_VERSION, "effective_from": EFFECTIVE_FROM, "title": TITLE, "text": TEXT}
