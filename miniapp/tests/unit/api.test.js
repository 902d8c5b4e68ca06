import { buildQuery, createClient, idempotentPoster, MERCHANT_KEY, newIdempotencyKey, TOKENS_KEY } from '../../src/lib/api'

function memoryStorage() {
  const data = {}
  return { data, get: (k) => (k in data ? data[k] : null), set: (k, v) => { data[k] = v }, remove: (k) => { delete data[k] } }
}

// A scripted server: each route answers from a function; every request is recorded.
function fakeServer(routes) {
  const seen = []
  const transport = async (req) => {
    seen.push(req)
    const path = req.url.replace('https://api.test/api/v1', '').split('?')[0]
    const handler = routes[`${req.method} ${path}`]
    if (!handler) return { status: 404, data: { error: { code: 'not_found', message: 'Not found.', message_zh: '未找到。' } } }
    return handler(req)
  }
  return { transport, seen }
}

const expired = { status: 401, data: { error: { code: 'invalid_token', message: 'expired', message_zh: '过期' } } }
const tokens = (n) => ({ status: 200, data: { access_token: `a${n}`, refresh_token: `r${n}`, expires_in: 900, token_type: 'Bearer' } })

function setup(routes, clock = { t: 1000000 }) {
  const server = fakeServer(routes)
  const storage = memoryStorage()
  const signedOut = jest.fn()
  const client = createClient({ baseUrl: 'https://api.test/api/v1', transport: server.transport, storage, now: () => clock.t, onSignedOut: signedOut })
  return { client, server, storage, signedOut, clock }
}

test('sign-in stores tokens and later calls carry the bearer', async () => {
  const { client, server, storage } = setup({
    'POST /auth/wechat': () => tokens(1),
    'GET /me': (req) => ({ status: 200, data: { id: 7, auth: req.header.Authorization } }),
  })
  await client.signIn('wechat', 'code-1')
  expect(storage.data[TOKENS_KEY].refresh_token).toBe('r1')
  expect(server.seen[0].data).toEqual({ code: 'code-1' })
  expect(await client.call('GET', '/me')).toEqual({ id: 7, auth: 'Bearer a1' })
})

test('an expired access token is refreshed once, silently, even for concurrent calls', async () => {
  let refreshes = 0
  const { client, server, storage } = setup({
    'POST /auth/wechat': () => tokens(1),
    'POST /auth/refresh': (req) => {
      refreshes += 1
      expect(req.data).toEqual({ refresh_token: 'r1' })
      return tokens(2)
    },
    'GET /me/account': (req) => (req.header.Authorization === 'Bearer a2' ? { status: 200, data: { ok: true } } : expired),
  })
  await client.signIn('wechat', 'c')
  const answers = await Promise.all([client.call('GET', '/me/account'), client.call('GET', '/me/account')])
  expect(answers).toEqual([{ ok: true }, { ok: true }])
  expect(refreshes).toBe(1)
  expect(storage.data[TOKENS_KEY].access_token).toBe('a2')
  expect(server.seen.filter((r) => r.url.endsWith('/auth/refresh'))).toHaveLength(1)
})

test('a token about to expire is refreshed before the call', async () => {
  const { client, server, clock } = setup({
    'POST /auth/wechat': () => tokens(1),
    'POST /auth/refresh': () => tokens(2),
    'GET /me': (req) => ({ status: 200, data: req.header.Authorization }),
  })
  await client.signIn('wechat', 'c')
  clock.t += 890 * 1000
  expect(await client.call('GET', '/me')).toBe('Bearer a2')
  expect(server.seen.map((r) => r.url.replace('https://api.test/api/v1', ''))).toEqual(['/auth/wechat', '/auth/refresh', '/me'])
})

test('a refused refresh signs out locally and says so', async () => {
  const { client, storage, signedOut } = setup({
    'POST /auth/wechat': () => tokens(1),
    'POST /auth/refresh': () => ({ status: 401, data: { error: { code: 'invalid_refresh_token', message: 'x', message_zh: 'y' } } }),
    'GET /me': () => expired,
  })
  await client.signIn('wechat', 'c')
  storage.data[MERCHANT_KEY] = { access_token: 'm' }
  await expect(client.call('GET', '/me')).rejects.toMatchObject({ code: 'signed_out', status: 401 })
  expect(storage.data[TOKENS_KEY]).toBeUndefined()
  expect(storage.data[MERCHANT_KEY]).toBeUndefined()
  expect(signedOut).toHaveBeenCalled()
  expect(client.isSignedIn()).toBe(false)
})

test('other errors pass through with their code and messages', async () => {
  const { client } = setup({
    'POST /auth/wechat': () => tokens(1),
    'POST /offers/3/claim': (req) => {
      expect(req.header['Idempotency-Key']).toBe('k-1')
      return { status: 409, data: { error: { code: 'insufficient_points', message: 'Not enough points.', message_zh: '积分不足。' } } }
    },
  })
  await client.signIn('wechat', 'c')
  await expect(client.call('POST', '/offers/3/claim', { headers: { 'Idempotency-Key': 'k-1' } }))
    .rejects.toMatchObject({ status: 409, code: 'insufficient_points', message_zh: '积分不足。' })
})

test('merchant mode starts a session with the citizen token and restarts it when it expires', async () => {
  let sessions = 0
  const { client, storage } = setup({
    'POST /auth/wechat': () => tokens(1),
    'POST /merchant/session': (req) => {
      expect(req.header.Authorization).toBe('Bearer a1')
      sessions += 1
      return { status: 200, data: { access_token: `m${sessions}`, expires_in: 900, staff_id: 1, merchant_id: 2, role: 'merchant_staff', store_ids: [3] } }
    },
    'GET /merchant/me': (req) => (req.header.Authorization === 'Bearer m2' ? { status: 200, data: { ok: 1 } } : expired),
  })
  await client.signIn('wechat', 'c')
  expect(await client.merchant('GET', '/merchant/me')).toEqual({ ok: 1 })
  expect(sessions).toBe(2)
  expect(storage.data[MERCHANT_KEY].access_token).toBe('m2')
  client.leaveMerchantMode()
  expect(storage.data[MERCHANT_KEY]).toBeUndefined()
})

test('sign-out forgets tokens even when the server is unreachable', async () => {
  const { client, storage } = setup({
    'POST /auth/wechat': () => tokens(1),
    'POST /auth/logout': () => { throw new Error('offline') },
  })
  await client.signIn('wechat', 'c')
  await client.signOut()
  expect(storage.data[TOKENS_KEY]).toBeUndefined()
})

test('query strings and idempotency keys', () => {
  expect(buildQuery({ limit: 20, cursor: 'a b/c', skip: null, empty: '' })).toBe('?limit=20&cursor=a%20b%2Fc')
  expect(buildQuery({})).toBe('')
  const keys = new Set(Array.from({ length: 200 }, () => newIdempotencyKey()))
  expect(keys.size).toBe(200)
  for (const key of keys) expect(key).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
})

test('a retried write keeps its Idempotency-Key until it succeeds, is refused, or changes', async () => {
  const sent = []
  const answers = [{ status: 503 }, 'ok', { status: 409 }, { status: 0 }, 'ok']
  const client = {
    call: async (method, path, { body, headers }) => {
      sent.push([method, path, body.n, headers['Idempotency-Key']])
      const answer = answers.shift()
      if (answer !== 'ok') throw Object.assign(new Error('refused'), answer)
      return { done: body.n }
    },
  }
  let counter = 0
  const post = idempotentPoster(client, () => `k${(counter += 1)}`)
  await expect(post('/me/appeals', { n: 1 })).rejects.toMatchObject({ status: 503 })
  await expect(post('/me/appeals', { n: 1 })).resolves.toEqual({ done: 1 }) // retried: same key
  await expect(post('/me/appeals', { n: 1 })).rejects.toMatchObject({ status: 409 }) // a new write: new key
  await expect(post('/me/appeals', { n: 1 })).rejects.toMatchObject({ status: 0 }) // refused before: new key
  await expect(post('/me/appeals', { n: 2 })).resolves.toEqual({ done: 2 }) // changed body: new key
  expect(sent.map((s) => s[3])).toEqual(['k1', 'k1', 'k2', 'k3', 'k4'])
  expect(sent.every((s) => s[0] === 'POST' && s[1] === '/me/appeals')).toBe(true)
})
