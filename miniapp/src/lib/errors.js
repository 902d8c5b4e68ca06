// What the citizen reads when something fails. The API's errors carry a stable `code` plus its own
// `message` / `message_zh`; this table adds the codes the app itself produces (no network, timeout,
// signed out) and clearer wording for conflicts a citizen or merchant meets often.

export class ApiError extends Error {
  constructor({ status = 0, code = 'internal_error', message = '', message_zh = '', details = null } = {}) {
    super(message || code)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.message_zh = message_zh
    this.details = details
  }
}

export const MESSAGES = {
  network_error: { zh: '网络连接失败，请检查网络后重试。', en: 'No network connection. Check it and try again.' },
  timeout: { zh: '请求超时，请稍后重试。', en: 'The request timed out. Please try again.' },
  signed_out: { zh: '登录已过期，请重新登录。', en: 'Your session has ended. Please sign in again.' },
  invalid_refresh_token: { zh: '登录已过期，请重新登录。', en: 'Your session has ended. Please sign in again.' },
  rate_limited: { zh: '操作太频繁，请稍后再试。', en: 'Too many attempts. Please wait a moment.' },
  insufficient_points: { zh: '积分不足，暂时无法领取。', en: 'You do not have enough points for this.' },
  out_of_stock: { zh: '来晚了，该权益已领完。', en: 'Sorry, this offer has run out.' },
  per_citizen_limit: { zh: '您已达到该权益的领取上限。', en: 'You have claimed this offer as many times as allowed.' },
  coupon_already_used: { zh: '该券已核销过，不能重复使用。', en: 'This coupon has already been used.' },
  coupon_expired: { zh: '该券已过期，无法核销。', en: 'This coupon has expired.' },
  coupon_cancelled: { zh: '该券已取消，无法核销。', en: 'This coupon was cancelled.' },
  coupon_not_yet_valid: { zh: '该券尚未到可使用时间。', en: 'This coupon cannot be used yet.' },
  invalid_coupon_token: { zh: '券码无效或已过期，请让顾客刷新二维码后重试。', en: 'Invalid or expired code. Ask the customer to refresh the QR code.' },
  wrong_merchant: { zh: '该券不属于本商户，请核对。', en: 'This coupon belongs to another merchant.' },
  store_not_allowed: { zh: '该券不能在本门店核销。', en: 'This coupon cannot be redeemed at this store.' },
  invalid_document_number: { zh: '票据号码格式不正确（电子发票为20位数字）。', en: 'The number is not valid (an e-invoice number has 20 digits).' },
  empty: { zh: '请填写号码。', en: 'Please enter the number.' },
  bad_item_type: { zh: '请选择票据类型。', en: 'Choose the kind of document.' },
  duplicate_item: { zh: '该票据已计入过积分（每张只计一次）。', en: 'This document was already credited (each counts once).' },
  consent_required: { zh: '请先同意隐私条款。', en: 'Please accept the privacy terms first.' },
  not_merchant_staff: { zh: '您还不是商户店员，无法进入商户模式。', en: 'You are not a merchant staff member.' },
  internal_error: { zh: '服务暂时不可用，请稍后重试。', en: 'Something went wrong. Please try again later.' },
}

/** The message to show for an error (ApiError or anything thrown), in `lang`. */
export function messageFor(error, lang = 'zh') {
  const code = error && error.code
  const known = code && MESSAGES[code]
  if (known) return known[lang === 'en' ? 'en' : 'zh']
  if (error && error.status) {
    const server = lang === 'en' ? error.message : error.message_zh
    if (server) return server
  }
  return MESSAGES.internal_error[lang === 'en' ? 'en' : 'zh']
}

/** Builds an ApiError from an HTTP answer whose body may or may not be our JSON error. */
export function errorFromResponse(status, body) {
  const e = body && typeof body === 'object' && body.error
  if (e && e.code) return new ApiError({ status, ...e })
  const code = status === 401 ? 'unauthorized' : status === 429 ? 'rate_limited' : status >= 500 ? 'internal_error' : 'bad_request'
  return new ApiError({ status, code })
}
