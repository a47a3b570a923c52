#!/usr/bin/env node
// The reference Redox client in Node.js, standard library only: send | serve --port N | probe.
// The same work and the same contracts as redox_client.py (its correct behaviour, no faults).
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');

const env = (name) => process.env[name];
const WORK = env('REDOX_HARNESS_WORKDIR') || '.';
const MAX_BACKOFF = parseFloat(env('CLIENT_MAX_BACKOFF') || '0.05');
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

function request(method, url, body, headers) {
  return new Promise((resolve) => {
    const req = http.request(url, { method, headers: { ...headers, 'Content-Length': body ? Buffer.byteLength(body) : 0 } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json = text;
        try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
        resolve({ status: res.statusCode, body: json, headers: res.headers });
      });
    });
    req.on('error', () => resolve({ status: 0, body: null, headers: {} }));
    if (body) req.write(body);
    req.end();
  });
}

// A token by client credentials at REDOX_TOKEN_URL (null when refused); 429: wait, at most four tries.
async function newToken() {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: env('REDOX_CLIENT_ID'),
    client_secret: env('REDOX_CLIENT_SECRET') }).toString();
  for (let i = 0; i < 4; i++) {
    const r = await request('POST', env('REDOX_TOKEN_URL'), form, { 'Content-Type': 'application/x-www-form-urlencoded' });
    if (r.status === 429) { await sleep(Math.min(parseFloat(r.headers['retry-after'] || '1'), MAX_BACKOFF)); continue; }
    return r.status === 200 ? r.body.access_token : null;
  }
  return null;
}

async function send() {
  let token = null;
  const state = { orders: {}, sent: [], failed: [] };
  async function authenticate() { token = (await newToken()) || token; }  // a refused one keeps the old
  const event = (model, type, sections) => ({ Meta: { DataModel: model, EventType: type, Test: true,
    Destinations: [{ ID: env('REDOX_DESTINATION_ID') }] }, ...sections });
  async function post(payload) {
    const raw = JSON.stringify(payload);
    let reauthenticated = false; let busy = 0; let failed = 0;
    for (;;) {
      const r = await request('POST', env('REDOX_API_URL'), raw, { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` });
      if (r.status === 401 && !reauthenticated) { await authenticate(); reauthenticated = true; continue; }
      if (r.status === 429 && busy < 3) { busy++; await sleep(Math.min(parseFloat(r.headers['retry-after'] || '1'), MAX_BACKOFF)); continue; }
      if ((r.status === 0 || r.status >= 500) && failed < 1) { failed++; await sleep(0.05); continue; }
      (r.status >= 200 && r.status < 300 ? state.sent : state.failed).push([`${payload.Meta.DataModel}.${payload.Meta.EventType}`, r.status]);
      return r;
    }
  }
  await authenticate();
  for (let i = 1; i <= 4; i++) {
    const id = `CLIENT-${String(i).padStart(4, '0')}`;
    await post(event('PatientAdmin', 'NewPatient', { Patient: { Identifiers: [{ ID: id, IDType: 'MR' }],
      Demographics: { FirstName: 'Test', LastName: `Patient${i}`, DOB: '1990-01-01' } } }));
  }
  const found = await post(event('PatientSearch', 'Query', { Patient: { Demographics: { FirstName: 'Jordan', LastName: 'Rivera', DOB: '1979-05-04' } } }));
  const patient = found.status === 200 && found.body && found.body.Patient;
  if (patient && patient.Identifiers) {  // exactly one match; several: ask a human, update nobody
    await post(event('PatientAdmin', 'PatientUpdate', { Patient: { Identifiers: patient.Identifiers,
      Demographics: { ...(patient.Demographics || {}), EmailAddresses: ['jr@example.org'] } } }));
  }
  const order = await post(event('Order', 'New', { Patient: { Identifiers: [{ ID: '0000000001', IDType: 'MR' }] },
    Order: { ID: 'ORD-85025', Procedure: { Code: '85025', Codeset: 'CPT', Description: 'CBC' } } }));
  state.orders['ORD-85025'] = { status: order.status >= 200 && order.status < 300 ? 'placed' : order.status === 400 ? 'rejected' : 'unknown' };
  await post(event('Notes', 'New', { Patient: { Identifiers: [{ ID: '0000000001', IDType: 'MR' }] }, Visit: {},
    Note: { ContentType: 'Plain Text', FileContents: 'x'.repeat(70000), DocumentType: 'Progress Note', DocumentID: 'DOC-1', Provider: { ID: 'P1' } } }));
  fs.writeFileSync(path.join(WORK, 'send-state.json'), JSON.stringify(state));
}

// FHIR mode (REDOX_API=fhir): $match, an Observation writeback, every patient page by page (docs/clients.md#fhir-contracts).
const MATCH_GRADE = 'http://hl7.org/fhir/StructureDefinition/match-grade';
const grade = (entry) => ((entry.search || {}).extension || []).filter((x) => x.url === MATCH_GRADE).map((x) => x.valueCode)[0];

async function sendFhir() {
  const base = env('REDOX_FHIR_URL');
  let token = null;
  const state = { fhir: {} };
  async function authenticate() { token = (await newToken()) || token; }  // a refused one keeps the old
  async function call(method, url, body) {  // 401: new token, same request once; 429: back off; 5xx: once more
    const raw = body === undefined ? null : JSON.stringify(body);
    let reauthenticated = false; let busy = 0; let failed = 0;
    for (;;) {
      const headers = { Authorization: `Bearer ${token}`, Accept: 'application/fhir+json' };
      if (raw !== null) headers['Content-Type'] = 'application/fhir+json';
      const r = await request(method, url, raw, headers);
      if (r.status === 401 && !reauthenticated) { await authenticate(); reauthenticated = true; continue; }
      if (r.status === 429 && busy < 3) { busy++; await sleep(Math.min(parseFloat(r.headers['retry-after'] || '1'), MAX_BACKOFF)); continue; }
      if ((r.status === 0 || r.status >= 500) && failed < 1) { failed++; await sleep(0.05); continue; }
      return r;
    }
  }
  await authenticate();
  const found = await call('POST', `${base}/Patient/$match`, { resource: { resourceType: 'Patient',
    name: [{ family: 'Bixby', given: ['Timothy'] }], birthDate: '2008-01-06', gender: 'male' }, count: 5 });
  const entries = found.status === 200 && found.body && Array.isArray(found.body.entry) ? found.body.entry : [];
  const likely = entries.filter((e) => ['certain', 'probable'].includes(grade(e)));
  const result = likely.length === 1 ? 'identified' : likely.length ? 'ambiguous' : 'none';
  state.fhir.match = { status: found.status === 200 ? result : 'failed', candidates: entries.length };
  if (result === 'identified') {
    const observation = { resourceType: 'Observation', id: 'heart-rate-1', status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      subject: { reference: `Patient/${likely[0].resource.id}` }, effectiveDateTime: '2026-12-03T09:00:00Z',
      valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' } };
    const header = { resourceType: 'MessageHeader', id: 'observation-create-1',
      eventUri: 'https://fhir.redoxengine.com/EventDefinition/ObservationCreate',
      source: { name: 'Reference client (node)', endpoint: env('REDOX_SOURCE_ID') }, focus: [{ reference: 'Observation/heart-rate-1' }] };
    const r = await call('POST', `${base}/Observation/$observation-create`, { resourceType: 'Bundle', type: 'message',
      timestamp: '2026-12-03T09:00:01Z', entry: [{ resource: header }, { fullUrl: 'Observation/heart-rate-1', resource: observation }] });
    const record = { status: r.status >= 200 && r.status < 300 ? 'filed' : r.status >= 400 && r.status < 500 ? 'rejected' : 'failed', httpStatus: r.status };
    if (record.status !== 'filed' && r.body && r.body.resourceType === 'OperationOutcome') {
      const issue = (r.body.issue || [{}])[0];
      record.issue = (issue.details || {}).text || issue.diagnostics || '';
    }
    state.fhir.observation = record;
  }
  let url = `${base}/Patient?_count=50`; let pages = 0; let patients = 0; let complete = false;
  while (url) {
    const r = await call('GET', url);
    if (r.status !== 200 || !r.body || typeof r.body !== 'object') break;
    pages++;
    patients += (r.body.entry || []).filter((e) => (e.search || {}).mode === 'match').length;
    const next = (r.body.link || []).find((l) => l.relation === 'next');
    url = next ? next.url : null;
    if (!url) complete = true;
  }
  state.fhir.roster = { pages, patients, complete };
  fs.writeFileSync(path.join(WORK, 'send-state.json'), JSON.stringify(state));
}

function serve(port) {
  const state = { patients: {}, results: {}, canceled: [], processed: [] };
  const times = {};
  const answer = (res, status, body) => { res.writeHead(status, { 'Content-Type': 'application/json' }); res.end(body); };
  const handshake = (res, challenge, token) => {
    if (token !== env('VERIFICATION_TOKEN')) return answer(res, 403, 'wrong verification token');
    return answer(res, 200, JSON.stringify({ challenge }));
  };
  function process_(body) {
    const meta = body.Meta || {};
    const patient = body.Patient || {};
    const mrn = ((patient.Identifiers || [])[0] || {}).ID;
    if (meta.DataModel === 'Results') {
      for (const o of body.Orders || []) { state.results[o.ID] = state.results[o.ID] || { count: 0 }; state.results[o.ID].count++; }
    } else if (meta.DataModel === 'PatientAdmin' && meta.EventType === 'PatientMerge') {
      for (const old of patient.PreviousIdentifiers || []) { state.patients[old.ID] = { ...(state.patients[old.ID] || {}), mergedInto: mrn }; }
    } else if (meta.DataModel === 'PatientAdmin' && mrn) {
      const when = String(meta.EventDateTime || '');
      if (when >= (times[mrn] || '')) {  // an older event never overwrites a newer one
        times[mrn] = when;
        const last = (patient.Demographics || {}).LastName;
        state.patients[mrn] = { ...(state.patients[mrn] || {}), ...(last ? { LastName: last } : {}) };
      }
    } else if (meta.DataModel === 'Order' && meta.EventType === 'Cancel') {
      state.canceled.push((body.Order || {}).ID);
    }
  }
  http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (req.method === 'GET') {
      if (url.searchParams.has('challenge')) return handshake(res, url.searchParams.get('challenge'), url.searchParams.get('verification-token'));
      return answer(res, 200, '{"status":"up"}');
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body;
      try { body = JSON.parse(Buffer.concat(chunks).toString()); } catch (e) { return answer(res, 400, 'not JSON'); }
      if (body && body.challenge !== undefined && body.Meta === undefined) return handshake(res, String(body.challenge), body['verification-token']);
      if (req.headers['verification-token'] !== env('VERIFICATION_TOKEN')) return answer(res, 403, 'wrong verification token');
      if (body && body.resourceType === 'Bundle') {  // a FHIR notification: filed once per MessageHeader id
        const header = ((body.entry || [])[0] || {}).resource || {};
        if (header.resourceType !== 'MessageHeader') return answer(res, 400, 'a notification Bundle starts with its MessageHeader');
        const messageId = header.id || body.id;
        if (state.processed.includes(messageId)) return answer(res, 200, '{"status":"already processed"}');
        state.processed.push(messageId);
        const name = String(header.eventUri || '').split('/').pop();
        state.fhir = state.fhir || { notifications: {} };
        state.fhir.notifications[name] = { count: ((state.fhir.notifications[name] || {}).count || 0) + 1 };
        fs.writeFileSync(path.join(WORK, 'serve-state.json'), JSON.stringify(state));
        return answer(res, 200, '{"status":"ok"}');
      }
      const logId = (((body.Meta || {}).Logs || [])[0] || {}).ID;
      if (state.processed.includes(logId)) return answer(res, 200, '{"status":"already processed"}');
      state.processed.push(logId);
      process_(body);
      fs.writeFileSync(path.join(WORK, 'serve-state.json'), JSON.stringify(state));
      return answer(res, 200, '{"status":"ok"}');
    });
  }).listen(port, '127.0.0.1');
}

function probe() {
  const state = {};
  for (const name of ['send-state.json', 'serve-state.json']) {
    const file = path.join(WORK, name);
    if (!fs.existsSync(file)) continue;
    for (const [key, value] of Object.entries(JSON.parse(fs.readFileSync(file, 'utf8')))) {  // "fhir" comes from both: merged
      const both = value && typeof value === 'object' && !Array.isArray(value) && state[key] && typeof state[key] === 'object';
      state[key] = both ? { ...state[key], ...value } : value;
    }
  }
  process.stdout.write(JSON.stringify(state));
}

const [command, flag, port] = process.argv.slice(2);
if (command === 'send') (env('REDOX_API') === 'fhir' ? sendFhir : send)();
else if (command === 'serve' && flag === '--port') serve(parseInt(port, 10));
else if (command === 'probe') probe();
else { process.stderr.write('usage: redox_client.js send | serve --port N | probe\n'); process.exit(2); }
