/**
 * Layer 2: built WeChat pages (home, history, coupon QR, merchant redeem) in miniprogram-simulate.
 * @jest-environment jsdom
 */
const { installPlatform, openPage, settle, byTest, simulate } = require('./harness')

function dataTest(comp, name) {
  const node = byTest(comp, name)
  return node ? node.textContent.trim() : null
}

test('home shows the balance, CO2e, equivalents, the 30-day trend and points expiring soon', async () => {
  const platform = installPlatform({ 'GET /me': ['me'], 'GET /me/account': ['account'] })
  const home = await openPage('pages/home/index')
  expect(dataTest(home, 'balance')).toBe('1,234 积分')
  expect(dataTest(home, 'grams-today')).toBe('45 克')
  expect(dataTest(home, 'grams-month')).toBe('1.25 千克')
  expect(dataTest(home, 'grams-all')).toBe('12.8 千克')
  expect(dataTest(home, 'expiring')).toBe('30 积分 将于 2026-12-31 起过期')
  expect(home.dom.textContent).toContain('相当于 0.7 棵树一年的吸收量')
  expect(byTest(home, 'trend').children).toHaveLength(30)
  expect(platform.requests.map((r) => r.key)).toEqual(['GET /me', 'GET /me/account'])
  expect(platform.requests[0].header.Authorization).toBe('Bearer citizen-token')
})

test('home sends a citizen who has not accepted the terms to the consent page', async () => {
  const platform = installPlatform({ 'GET /me': ['me, terms not accepted'], 'GET /me/account': ['account'] })
  await openPage('pages/home/index')
  expect(platform.navigations).toEqual(['/pages/consent/index'])
})

test('history scrolls to the next page and opens an entry\'s explanation', async () => {
  const platform = installPlatform({
    'GET /me/ledger?limit=20': ['ledger page 1'],
    'GET /me/ledger?limit=20&cursor=eyJhIjoiMiJ9': ['ledger page 2'],
  })
  const history = await openPage('pages/history/index')
  expect(history.dom.querySelectorAll('[data-test^="entry-"]')).toHaveLength(5)
  history.instance.onReachBottom()
  await settle()
  const entries = history.dom.querySelectorAll('[data-test^="entry-"]')
  expect(entries).toHaveLength(6)
  expect(entries[5].textContent).toContain('领取权益（冻结）')
  expect(entries[5].textContent).toContain('-200')
  expect(history.dom.textContent).toContain('没有更多了')
  history.instance.onReachBottom() // no cursor left: no request
  await settle()
  expect(platform.requests).toHaveLength(2)

  expect(byTest(history, 'explanation')).toBeNull()
  history.querySelector('.entry').dispatchEvent('tap')
  await settle()
  const explanation = byTest(history, 'explanation').textContent
  expect(explanation).toContain('SHCI-P-METRO v1')
  expect(explanation).toContain('distance_km * factor')
  expect(explanation).toContain('factor: 31.5')
  expect(explanation).toContain('45 克')
})

test('the coupon QR code and short code refresh before the token expires', async () => {
  const platform = installPlatform({
    'GET /me/coupons/41': ['coupon'],
    'GET /me/coupons/41/qr': ['coupon qr 1', 'coupon qr 2'],
  })
  const coupon = await openPage('pages/coupon/index', { id: '41' })
  expect(dataTest(coupon, 'coupon-status')).toBe('待使用')
  expect(dataTest(coupon, 'short-code')).toBe('8399 5942')
  expect(byTest(coupon, 'qr')).not.toBeNull()
  // wx-image keeps its src in the render data, not as a DOM attribute
  const qrImage = coupon.querySelector('.qr__img')
  expect(JSON.stringify(coupon.data)).toContain('data:image/png;base64,iVBORw0KGgo')
  expect(qrImage).toBeTruthy()
  // The recorded token lives 11 s: the page asks again 10 s early, i.e. after 1 s.
  await simulate.sleep(1100)
  await settle()
  expect(dataTest(coupon, 'short-code')).toBe('1044 2871')
  expect(platform.requests.map((r) => r.key)).toEqual(
    ['GET /me/coupons/41', 'GET /me/coupons/41/qr', 'GET /me/coupons/41', 'GET /me/coupons/41/qr'])
  coupon.instance.onUnload() // stops the refresh timer
})

test('merchant mode: type the short code, confirm, see the result and today\'s redemptions', async () => {
  const platform = installPlatform({
    'POST /merchant/session': ['merchant session'],
    'GET /merchant/me': ['merchant me'],
    'GET /merchant/redemptions': ["today's redemptions", "today's redemptions after"],
    'POST /merchant/redemptions': ['redeem', 'redeem again'],
  })
  const merchant = await openPage('pages/merchant/index')
  expect(dataTest(merchant, 'merchant-name')).toBe('绿色咖啡')
  expect(dataTest(merchant, 'store')).toContain('绿色咖啡 徐汇店')
  expect(merchant.dom.textContent).toContain('今天还没有核销记录')

  merchant.querySelector('.input').dispatchEvent('input', { detail: { value: '8399 5942' } })
  merchant.querySelector('.next').dispatchEvent('tap')
  await settle()
  expect(dataTest(merchant, 'confirm-code')).toBe('83995942')
  merchant.querySelector('.confirm').dispatchEvent('tap')
  await settle()
  expect(dataTest(merchant, 'result-text')).toBe('核销成功')
  expect(merchant.dom.textContent).toContain('崇明大米一袋')
  expect(merchant.dom.textContent).toContain('#41')

  const redeem = platform.requests.find((r) => r.key === 'POST /merchant/redemptions')
  expect(redeem.data).toEqual({ store_id: 4, short_code: '83995942' })
  expect(redeem.header.Authorization).toBe('Bearer merchant-token')
  expect(redeem.header['Idempotency-Key']).toMatch(/^[0-9a-f-]{36}$/)
  expect(platform.requests.find((r) => r.key === 'POST /merchant/session').header.Authorization).toBe('Bearer citizen-token')

  // The next customer shows a coupon that was already used: the result says so plainly.
  merchant.querySelector('.again').dispatchEvent('tap')
  await settle()
  merchant.querySelector('.scan').dispatchEvent('tap')
  await settle()
  merchant.querySelector('.confirm').dispatchEvent('tap')
  await settle()
  expect(dataTest(merchant, 'result-text')).toBe('该券已核销过，不能重复使用。')
  const second = platform.requests.filter((r) => r.key === 'POST /merchant/redemptions')[1]
  expect(second.data).toEqual({ store_id: 4, token: 'cq1.scanned-token' })
  expect(second.header['Idempotency-Key']).not.toBe(redeem.header['Idempotency-Key'])
})
