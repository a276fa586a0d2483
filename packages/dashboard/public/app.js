// The dashboard page: plain JavaScript run as served, so nobody has to build
// it. The server does the bus work; this file only draws what it streams.

/** The services shown, by id: their data and list item. */
const services = new Map()
const list = document.getElementById('services')
const filterBox = document.getElementById('filter')
const count = document.getElementById('count')
const status = document.getElementById('status')
const detail = document.getElementById('detail')
/** How many points each chart keeps (one a second). */
const WINDOW = 120

let chosen = null

const element = (tag, attributes = {}, ...children) => {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'class') node.className = value
    else if (key === 'text') node.textContent = value
    else node.setAttribute(key, value)
  }
  for (const child of children) if (child != null) node.append(child)
  return node
}

/** Replaces a node's children, leaving out the nulls of optional parts. */
const fill = (node, ...children) =>
  node.replaceChildren(...children.filter((child) => child != null))

const displayInfo = (info) => {
  const { host: _h, port: _p, service: _s, ...rest } = info
  return rest
}
const nameOf = (service) => {
  const info = service.info
  if (typeof info['autobus.bridge'] === 'string') return `bridge ${info['autobus.bridge']}`
  return String(info.name ?? info.type ?? service.id)
}
const ago = (since) => {
  const seconds = Math.max(0, Math.round((Date.now() - since) / 1000))
  if (seconds < 60) return `${seconds} s`
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`
  return `${Math.round(seconds / 3600)} h`
}

const heardText = (service) =>
  service.lastHeard == null ? 'not heard' : `heard ${ago(service.lastHeard)} ago`
const verifiedText = (service) =>
  service.verified ? 'verified: a probe reached it' : 'not verified: no probe has reached it yet'

// Each service's searchable text is made once, so that filtering a thousand
// services is a thousand substring tests.
const haystack = (service) =>
  `${service.id} ${service.host}:${service.port} ${JSON.stringify(service.info)}`.toLowerCase()

function showCount() {
  let shown = 0
  for (const [, entry] of services) if (!entry.item.hidden) shown++
  count.textContent = `${shown} of ${services.size} service(s)`
}

function applyFilter() {
  const text = filterBox.value.trim().toLowerCase()
  for (const [, entry] of services) entry.item.hidden = text !== '' && !entry.text.includes(text)
  showCount()
}

function addService(service) {
  services.get(service.id)?.item.remove()
  const item = element(
    'li',
    { 'data-id': service.id },
    element('span', { class: 'since', text: ago(service.since), 'data-since': service.since }),
    element('div', { class: 'name', text: nameOf(service) }),
    element('div', { class: 'where', text: `${service.host}:${service.port}` }),
    element('div', { class: 'id', text: service.id }),
    element('div', {
      class: 'heard',
      text: heardText(service),
      'data-heard': service.lastHeard ?? '',
    }),
  )
  item.dataset.verified = String(service.verified === true)
  item.addEventListener('click', () => choose(service.id))
  if (chosen?.id === service.id) item.classList.add('chosen')
  const text = haystack(service)
  const filter = filterBox.value.trim().toLowerCase()
  item.hidden = filter !== '' && !text.includes(filter)
  list.append(item)
  services.set(service.id, { service, item, text })
  if (isBridgeWork(service)) scheduleBridges()
}

function removeService(id) {
  const entry = services.get(id)
  entry?.item.remove()
  services.delete(id)
  if (entry && isBridgeWork(entry.service)) scheduleBridges()
}

filterBox.addEventListener('input', applyFilter)
setInterval(() => {
  for (const node of list.querySelectorAll('.since'))
    node.textContent = ago(Number(node.dataset.since))
  for (const [, entry] of services)
    entry.item.querySelector('.heard').textContent = heardText(entry.service)
}, 5_000)

const events = new EventSource('/api/stream')
events.addEventListener('open', () => {
  status.textContent = 'live'
  status.classList.add('live')
})
events.addEventListener('error', () => {
  status.textContent = 'reconnecting…'
  status.classList.remove('live')
})
events.addEventListener('services', (message) => {
  for (const [id] of services) removeService(id)
  for (const service of JSON.parse(message.data)) addService(service)
  showCount()
})
events.addEventListener('appeared', (message) => {
  addService(JSON.parse(message.data))
  showCount()
})
events.addEventListener('disappeared', (message) => {
  removeService(JSON.parse(message.data).id)
  showCount()
})
events.addEventListener('heard', (message) => {
  for (const [id, heard] of Object.entries(JSON.parse(message.data))) {
    const entry = services.get(id)
    if (!entry) continue
    Object.assign(entry.service, heard)
    entry.item.dataset.verified = String(heard.verified === true)
    const node = entry.item.querySelector('.heard')
    node.dataset.heard = heard.lastHeard ?? ''
    node.textContent = heardText(entry.service)
    if (chosen?.id === id) showHeard(entry.service)
  }
})
events.addEventListener('security', (message) => showSecurity(JSON.parse(message.data)))

// --- rejected datagrams and denied requests ---------------------------------

const securityPanel = document.getElementById('security')
const droppedTable = document.getElementById('dropped')
const deniedTable = document.getElementById('denied')

function showSecurity({ dropped, keyed, buses }) {
  const rows = Object.entries(dropped ?? {})
  droppedTable.replaceChildren(
    element('caption', { text: "Discovery datagrams dropped, as this dashboard's bus hears them" }),
    ...rows.map(([reason, count]) =>
      element(
        'tr',
        { 'data-reason': reason },
        element('th', { text: reason }),
        element('td', { class: count > 0 ? 'count bad' : 'count', text: String(count) }),
      ),
    ),
  )
  const shown = buses.filter(
    (entry) => entry.keyed || entry.handshakesFailed > 0 || entry.requestsDenied > 0,
  )
  fill(
    deniedTable,
    element('caption', { text: 'Failed handshakes and denied requests, by bus' }),
    element(
      'tr',
      {},
      element('th', { text: 'bus' }),
      element('th', { text: 'keyed' }),
      element('th', { text: 'handshakes failed' }),
      element('th', { text: 'denied' }),
    ),
    ...shown.map((entry) =>
      element(
        'tr',
        { 'data-bus': entry.bus },
        element('td', { text: entry.bus }),
        element('td', { text: entry.keyed ? 'yes' : 'no' }),
        element('td', {
          class: entry.handshakesFailed > 0 ? 'handshakes bad' : 'handshakes',
          text: String(entry.handshakesFailed),
        }),
        element('td', {
          class: entry.requestsDenied > 0 ? 'denied bad' : 'denied',
          text: String(entry.requestsDenied),
        }),
      ),
    ),
    shown.length === 0
      ? element(
          'tr',
          {},
          element('td', { class: 'empty', text: 'no bus has a key or access rules' }),
        )
      : null,
  )
  // Open by itself once keys are in use or something was refused.
  const refused = rows.some(([, count]) => count > 0) || shown.length > 0
  if ((keyed || refused) && !securityPanel.dataset.seen) {
    securityPanel.open = true
    securityPanel.dataset.seen = 'true'
  }
}

// --- bridges ---------------------------------------------------------------

/** Info key of the service each bridge publishes on its bus. */
const BRIDGE_KEY = 'autobus.bridge'
const bridgesPanel = document.getElementById('bridges')
const graph = document.getElementById('bridge-graph')
/** Each bridge's links as its `links` function last gave them, by the bridge's service id. */
const linksOf = new Map()
let bridgeTimer = null

const isBridgeWork = (service) =>
  typeof service.info[BRIDGE_KEY] === 'string' || service.info.bridged === true

function scheduleBridges() {
  if (bridgeTimer) return
  bridgeTimer = setTimeout(() => {
    bridgeTimer = null
    void readLinks()
    drawBridges()
  }, 200)
}

async function readLinks() {
  const markers = [...services.values()]
    .map((entry) => entry.service)
    .filter((service) => typeof service.info[BRIDGE_KEY] === 'string')
  for (const id of linksOf.keys())
    if (!markers.some((service) => service.id === id)) linksOf.delete(id)
  await Promise.all(
    markers.map(async (service) => {
      try {
        const response = await fetch(`/api/services/${encodeURIComponent(service.id)}/call`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'links', args: [] }),
        })
        const answer = await response.json()
        if (Array.isArray(answer.result)) linksOf.set(service.id, answer.result)
      } catch {
        // A bridge that cannot be asked is drawn from the info keys alone.
      }
    }),
  )
  drawBridges()
}
setInterval(() => {
  if (!bridgesPanel.hidden) void readLinks()
}, 5_000)

/**
 * Bridges and their links: each bridge's marker service names it and its
 * bus; a stand-in's `via` lists the bridges on its way; a bridge's `links`
 * names the bridges it is linked to and, where it measures it, the latency.
 */
function bridgeGraph() {
  const bridges = new Map()
  const links = new Map()
  const node = (id) => {
    if (!bridges.has(id)) bridges.set(id, { id, bus: null })
    return bridges.get(id)
  }
  const link = (a, b) => {
    const key = [a, b].sort().join('|')
    if (!links.has(key)) links.set(key, { key, a, b, latency: null })
    node(a)
    node(b)
    return links.get(key)
  }
  for (const [, { service }] of services) {
    const marker = service.info[BRIDGE_KEY]
    if (typeof marker === 'string') node(marker).bus = `${service.host}:${service.port}`
  }
  for (const [, { service }] of services) {
    const via = service.info.via
    if (service.info.bridged !== true || !Array.isArray(via)) continue
    for (let index = 0; index + 1 < via.length; index++)
      if (typeof via[index] === 'string' && typeof via[index + 1] === 'string')
        link(via[index], via[index + 1])
  }
  for (const [id, states] of linksOf) {
    const marker = services.get(id)?.service.info[BRIDGE_KEY]
    if (typeof marker !== 'string') continue
    for (const state of states) {
      if (typeof state?.peer !== 'string') continue
      const edge = link(marker, state.peer)
      const latency = state.latencyMs ?? state.rttMs
      if (typeof latency === 'number') edge.latency = latency
    }
  }
  return { bridges: [...bridges.values()], links: [...links.values()] }
}

const SVG = 'http://www.w3.org/2000/svg'
const svg = (tag, attributes = {}, text) => {
  const node = document.createElementNS(SVG, tag)
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value))
  if (text !== undefined) node.textContent = text
  return node
}

function drawBridges() {
  const { bridges, links } = bridgeGraph()
  bridgesPanel.hidden = bridges.length === 0
  if (bridges.length === 0) {
    graph.replaceChildren()
    return
  }
  const width = 600
  const height = 256
  graph.setAttribute('viewBox', `0 0 ${width} ${height}`)
  const radius = bridges.length === 1 ? 0 : Math.min(width, height) / 2 - 44
  const at = new Map()
  bridges.forEach((bridge, index) => {
    const angle = (2 * Math.PI * index) / bridges.length - Math.PI / 2
    at.set(bridge.id, {
      x: width / 2 + radius * Math.cos(angle) * 1.6,
      y: height / 2 + radius * Math.sin(angle),
    })
  })
  const lines = links.map((edge) => {
    const a = at.get(edge.a)
    const b = at.get(edge.b)
    const group = svg('g', {
      'data-link': edge.key,
      'data-latency': edge.latency ?? '',
    })
    group.append(
      svg('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y }),
      svg(
        'text',
        { class: 'latency', x: (a.x + b.x) / 2 + 4, y: (a.y + b.y) / 2 - 4 },
        edge.latency == null ? 'linked' : `${edge.latency.toFixed(1)} ms`,
      ),
    )
    return group
  })
  const nodes = bridges.map((bridge) => {
    const { x, y } = at.get(bridge.id)
    const group = svg('g', { 'data-bridge': bridge.id })
    group.append(
      svg('circle', { cx: x, cy: y, r: 14 }),
      svg('text', { x: x + 18, y: y - 2 }, `bridge ${bridge.id.slice(0, 12)}`),
      svg('text', { class: 'latency', x: x + 18, y: y + 12 }, bridge.bus ?? 'bus not seen'),
    )
    return group
  })
  graph.replaceChildren(...lines, ...nodes)
}

/** The schema of each argument as short text: its type, or the whole schema. */
const schemaText = (schema) =>
  schema && Object.keys(schema).length === 0
    ? 'unknown'
    : typeof schema?.type === 'string' && Object.keys(schema).length === 1
      ? schema.type
      : JSON.stringify(schema)

function functionSection(name, entry, id) {
  const args = entry.args ?? []
  const input = element('textarea', {
    name: 'args',
    rows: '1',
    'aria-label': `arguments of ${name}`,
    placeholder: 'arguments as a JSON array, e.g. [2, 3]',
  })
  input.value = args.length === 0 ? '[]' : ''
  const outcome = element('pre', { class: 'outcome' })
  const form = element('form', {}, input, element('button', { type: 'submit', text: 'Call' }))
  form.addEventListener('submit', async (submitted) => {
    submitted.preventDefault()
    let parsed
    try {
      parsed = JSON.parse(input.value.trim() || '[]')
      if (!Array.isArray(parsed)) parsed = [parsed]
    } catch {
      outcome.className = 'outcome error'
      outcome.textContent = 'The arguments are not JSON.'
      return
    }
    outcome.className = 'outcome'
    outcome.textContent = '…'
    const response = await fetch(`/api/services/${encodeURIComponent(id)}/call`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, args: parsed }),
    })
    const answer = await response.json()
    if ('result' in answer) {
      outcome.className = 'outcome ok'
      outcome.textContent = JSON.stringify(answer.result, null, 2)
    } else {
      outcome.className = 'outcome error'
      outcome.textContent = `${answer.error.name} (${answer.error.code}): ${answer.error.message}`
    }
  })
  const signature = `${name}(${args.map(schemaText).join(', ')})${entry.result ? ` → ${schemaText(entry.result)}` : ''}`
  return element(
    'div',
    { class: 'function', 'data-function': name },
    element('code', { text: signature }),
    entry.doc ? element('div', { class: 'doc', text: entry.doc }) : null,
    element(
      'details',
      {},
      element('summary', { text: 'schemas' }),
      element('pre', { text: JSON.stringify({ args, result: entry.result ?? null }, null, 2) }),
    ),
    form,
    outcome,
  )
}

function chart(title, key, series) {
  const holder = element('div', { class: 'chart', 'data-chart': key })
  holder.append(element('div', { class: 'title', text: title }))
  const data = [[], ...series.map(() => [])]
  const plot = new uPlot(
    {
      width: 320,
      height: 150,
      legend: { show: series.length > 1, live: false },
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5 }))],
      axes: [{ size: 28 }, { size: 44 }],
      scales: { x: { time: true } },
    },
    data,
    holder,
  )
  return {
    holder,
    push(at, values) {
      data[0].push(at / 1000)
      values.forEach((value, index) => {
        data[index + 1].push(value)
      })
      if (data[0].length > WINDOW) for (const column of data) column.shift()
      plot.setData(data)
      holder.dataset.points = String(data[0].length)
      holder.dataset.latest = JSON.stringify(values)
    },
  }
}

let live = null

function choose(id) {
  const entry = services.get(id)
  if (!entry) return
  live?.close()
  for (const item of list.querySelectorAll('.chosen')) item.classList.remove('chosen')
  entry.item.classList.add('chosen')
  chosen = entry.service
  const service = entry.service
  fill(
    detail,
    element('h2', { text: nameOf(service) }),
    element('div', { class: 'where', text: `${service.host}:${service.port} · ${service.id}` }),
    heardLine,
    element('pre', { text: JSON.stringify(displayInfo(service.info)) }),
    element('p', { class: 'empty', text: 'loading…' }),
  )
  showHeard(service)
  const charts = {
    calls: chart('calls / s', 'calls', [{ label: 'calls/s', stroke: '#2563eb' }]),
    errors: chart('errors / s', 'errors', [{ label: 'errors/s', stroke: '#c0262d' }]),
    latency: chart('latency (ms)', 'latency', [
      { label: 'p50', stroke: '#15803d' },
      { label: 'p90', stroke: '#d97706' },
      { label: 'p99', stroke: '#c0262d' },
    ]),
  }
  const values = new Map()
  const log = element('ol', { id: 'event-log' })
  const busFigures = element('p', { class: 'doc', id: 'bus-figures' })
  const flows = element('table', { id: 'flows' })
  let previous = null
  live = new EventSource(`/api/services/${encodeURIComponent(id)}/live`)
  live.addEventListener('description', (message) => {
    const description = JSON.parse(message.data)
    const objects = element('table', { id: 'objects' })
    for (const [name, object] of Object.entries(description.objects)) {
      const value = element('td', { class: 'value' })
      values.set(name, value)
      objects.append(
        element(
          'tr',
          { 'data-object': name },
          element('th', { text: name }),
          value,
          element('td', { class: 'doc', text: object.doc ?? '' }),
        ),
      )
    }
    const names = (kind) => Object.entries(description[kind] ?? {})
    fill(
      detail,
      element('h2', { text: nameOf(service) }),
      element('div', { class: 'where', text: `${service.host}:${service.port} · ${service.id}` }),
      heardLine,
      description.doc ? element('p', { class: 'doc', text: description.doc }) : null,
      element('pre', { text: JSON.stringify(displayInfo(service.info)) }),
      element('h3', { text: 'Metrics' }),
      busFigures,
      element(
        'div',
        { class: 'charts' },
        charts.calls.holder,
        charts.errors.holder,
        charts.latency.holder,
      ),
      element('h3', { text: 'Functions' }),
      ...names('functions').map(([name, entry]) => functionSection(name, entry, id)),
      element('h3', { text: 'Objects' }),
      objects,
      element('h3', { text: 'Events' }),
      element(
        'p',
        { class: 'doc' },
        names('events')
          .map(([name, entry]) => `${name}(${(entry.args ?? []).map(schemaText).join(', ')})`)
          .join(' · ') || 'none',
      ),
      log,
      element('h3', { text: 'Channels and streams' }),
      element(
        'p',
        { class: 'doc' },
        [
          ...names('channels').map(([name]) => `channel ${name}`),
          ...names('streams').map(([name]) => `stream ${name}`),
        ].join(' · ') || 'none',
      ),
      flows,
    )
  })
  live.addEventListener('changed', (message) => {
    const { name, value } = JSON.parse(message.data)
    const cell = values.get(name)
    if (cell) cell.textContent = JSON.stringify(value)
  })
  live.addEventListener('fired', (message) => {
    const { name, args, at } = JSON.parse(message.data)
    log.prepend(
      element(
        'li',
        { 'data-event': name },
        element('time', { text: new Date(at).toLocaleTimeString() }),
        `${name}(${args.map((arg) => JSON.stringify(arg)).join(', ')})`,
      ),
    )
    while (log.children.length > 200) log.lastChild.remove()
  })
  live.addEventListener('stats', (message) => {
    const { at, stats, server, bounds } = JSON.parse(message.data)
    if (server)
      busFigures.textContent = `its bus: ${server.sessions} session(s), ${server.running} running · ${size(server.bytesIn)} in · ${size(server.bytesOut)} out · ${size(server.bytesQueued)} queued · ${server.busy} answered busy · ${refusedCount(stats)} refused before a handler`
    showFlows(flows, stats)
    const functions = Object.values(stats.functions)
    const totals = {
      at,
      calls: functions.reduce((sum, f) => sum + f.calls, 0),
      errors: functions.reduce((sum, f) => sum + f.errors, 0),
      // The latency histogram is cumulative: the window's own is the difference.
      counts: functions.reduce(
        (sum, f) => sum.map((value, index) => value + (f.latency.counts[index] ?? 0)),
        functions[0]?.latency.counts.map(() => 0) ?? [],
      ),
    }
    if (previous && at > previous.at) {
      const seconds = (at - previous.at) / 1000
      charts.calls.push(at, [(totals.calls - previous.calls) / seconds])
      charts.errors.push(at, [(totals.errors - previous.errors) / seconds])
      const window = totals.counts.map((value, index) => value - (previous.counts[index] ?? 0))
      charts.latency.push(
        at,
        [0.5, 0.9, 0.99].map((q) => quantile(window, q, bounds)),
      )
    }
    previous = totals
  })
  live.addEventListener('lost', (message) => {
    detail.append(element('p', { class: 'lost', text: `lost: ${JSON.parse(message.data).reason}` }))
    live.close()
  })
  live.addEventListener('disappeared', () => {
    detail.append(element('p', { class: 'lost', text: 'the service went away' }))
    live.close()
  })
}

const heardLine = element('p', { class: 'doc', id: 'heard' })

function showHeard(service) {
  heardLine.textContent = `${heardText(service)} · ${verifiedText(service)}`
  heardLine.dataset.verified = String(service.verified === true)
}

const sum = (counts) => Object.values(counts ?? {}).reduce((total, count) => total + count, 0)
const refusedCount = (stats) =>
  sum(stats.rejectedByCode) +
  Object.values(stats.functions).reduce((total, f) => total + sum(f.rejectedByCode), 0)

/** The chosen service's channels and streams with their figures. */
function showFlows(table, stats) {
  const rows = [
    ...Object.entries(stats.channels ?? {}).map(([name, f]) =>
      element(
        'tr',
        { 'data-channel': name },
        element('th', { text: `channel ${name}` }),
        element('td', { text: `${f.open} open, ${f.opened} opened` }),
        element('td', { text: `${f.messagesIn} messages in · ${f.messagesOut} out` }),
      ),
    ),
    ...Object.entries(stats.streams ?? {}).map(([name, f]) =>
      element(
        'tr',
        { 'data-stream': name },
        element('th', { text: `stream ${name}` }),
        element('td', { text: `${f.open} open, ${f.opened} opened` }),
        element('td', {
          text: `${size(f.bytesIn)} in · ${size(f.bytesOut)} out · ${(f.blockedMs / 1000).toFixed(2)} s blocked`,
        }),
      ),
    ),
  ]
  table.replaceChildren(...rows)
}

const size = (bytes) =>
  typeof bytes !== 'number'
    ? '?'
    : bytes < 1024
      ? `${bytes} B`
      : bytes < 1024 ** 2
        ? `${(bytes / 1024).toFixed(1)} KiB`
        : `${(bytes / 1024 ** 2).toFixed(1)} MiB`

/** A quantile of a window's histogram, as its bucket's upper bound in ms (null when empty). */
function quantile(counts, q, bounds) {
  const total = counts.reduce((sum, value) => sum + value, 0)
  if (total === 0) return null
  const rank = Math.ceil(q * total)
  let seen = 0
  for (let index = 0; index < counts.length; index++) {
    seen += counts[index]
    if (seen >= rank) return bounds[index] ?? bounds[bounds.length - 1]
  }
  return null
}
