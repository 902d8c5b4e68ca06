// Turns a ledger entry's explanation (free-form JSON built by the crediting job: methodology,
// formula, parameters, activity, grams, cap) into labelled lines a citizen can read.
import { formatDateTime, formatGrams } from './format'

const LABELS = {
  scenario_code: { zh: '场景', en: 'Scenario' },
  methodology_code: { zh: '方法学', en: 'Methodology' },
  formula: { zh: '计算公式', en: 'Formula' },
  parameters: { zh: '参数', en: 'Factors' },
  activity: { zh: '活动数据', en: 'Activity' },
  grams: { zh: '减排量', en: 'CO2e avoided' },
  credited_grams: { zh: '计入减排量', en: 'Credited' },
  capped_grams: { zh: '超出上限部分', en: 'Above the cap' },
  cap_applied: { zh: '封顶', en: 'Cap applied' },
  points_per_gram: { zh: '积分/克', en: 'Points per gram' },
  occurred_at: { zh: '发生时间', en: 'When' },
  district: { zh: '区', en: 'District' },
  base_points: { zh: '基础积分', en: 'Base points' },
  reason: { zh: '原因', en: 'Reason' },
  offer_title_zh: { zh: '权益', en: 'Offer' },
  coupon_id: { zh: '券编号', en: 'Coupon' },
}
const ORDER = Object.keys(LABELS)
const GRAM_FIELDS = ['grams', 'credited_grams', 'capped_grams']
const HIDDEN = ['exact', 'scenario_version', 'methodology_version', 'offer_title_en', 'campaign']

function flat(value) {
  if (value === null || value === undefined) return ''
  if (typeof value !== 'object') return String(value)
  return Object.keys(value).map((k) => `${k}: ${flat(value[k])}`).join(', ')
}

/** [{key, label, value}] in a stable order; unknown keys follow, with their raw name as the label. */
export function explanationLines(explanation, lang = 'zh') {
  if (!explanation || typeof explanation !== 'object') return []
  const keys = Object.keys(explanation).filter((k) => !HIDDEN.includes(k) && explanation[k] !== null && explanation[k] !== '')
  keys.sort((a, b) => {
    const ia = ORDER.indexOf(a) === -1 ? ORDER.length : ORDER.indexOf(a)
    const ib = ORDER.indexOf(b) === -1 ? ORDER.length : ORDER.indexOf(b)
    return ia - ib || (a < b ? -1 : a > b ? 1 : 0)
  })
  return keys.map((key) => {
    const raw = explanation[key]
    let value = flat(raw)
    if (GRAM_FIELDS.includes(key)) value = formatGrams(raw, lang)
    else if (key === 'occurred_at') value = formatDateTime(raw)
    else if (key === 'cap_applied') value = raw ? (lang === 'en' ? 'yes' : '是') : (lang === 'en' ? 'no' : '否')
    else if (key === 'scenario_code' && explanation.scenario_version) value = `${raw} v${explanation.scenario_version}`
    else if (key === 'methodology_code' && explanation.methodology_version) value = `${raw} v${explanation.methodology_version}`
    const label = LABELS[key] ? LABELS[key][lang === 'en' ? 'en' : 'zh'] : key
    return { key, label, value }
  })
}
