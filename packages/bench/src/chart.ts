/** Draws the summary's ratios as a horizontal bar chart (SVG), with each target marked. */
export function renderChart(summary: Record<string, unknown>): string {
  const bars: Array<{ label: string; value: number; target: number; lowerIsBetter?: boolean }> = [
    {
      label: '64 in flight vs Moleculer',
      value: Number(summary.rpc_pipelined_vs_moleculer),
      target: 1.5,
    },
    { label: '64 in flight vs raw TCP', value: Number(summary.rpc_pipelined_vs_raw), target: 0.7 },
    {
      label: 'p50 vs best peer (lower is better)',
      value: Number(summary.rpc_p50_vs_best_peer),
      target: 0.8,
      lowerIsBetter: true,
    },
    { label: 'events vs raw TCP', value: Number(summary.events_vs_raw), target: 0.7 },
    { label: 'streams vs raw TCP', value: Number(summary.stream_vs_raw), target: 0.5 },
  ].filter((bar) => Number.isFinite(bar.value))
  const width = 720
  const rowHeight = 44
  const left = 260
  const scale =
    (width - left - 60) /
    Math.max(2, ...bars.map((bar) => bar.value), ...bars.map((bar) => bar.target))
  const rows = bars.map((bar, i) => {
    const y = 40 + i * rowHeight
    const met = bar.lowerIsBetter ? bar.value <= bar.target : bar.value >= bar.target
    return [
      `<text x="${left - 10}" y="${y + 18}" text-anchor="end">${bar.label}</text>`,
      `<rect x="${left}" y="${y + 4}" width="${(bar.value * scale).toFixed(1)}" height="20" fill="${met ? '#2e7d32' : '#c62828'}"/>`,
      `<text x="${left + bar.value * scale + 6}" y="${y + 18}">${bar.value.toFixed(2)}×</text>`,
      `<line x1="${left + bar.target * scale}" x2="${left + bar.target * scale}" y1="${y}" y2="${y + 28}" stroke="#000" stroke-dasharray="3,2"/>`,
    ].join('')
  })
  const height = 60 + bars.length * rowHeight
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13" role="img">
<title>Autobus benchmark ratios against their targets</title>
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="22" font-weight="bold">Autobus ratios (dashed line: target; green: met)</text>
${rows.join('\n')}
</svg>
`
}
