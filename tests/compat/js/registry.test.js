// @kafkajs/confluent-schema-registry against Runnel's schema registry, with
// KafkaJS producing and consuming through Runnel's broker. Run by
// tests/compat/test_schema_registry.py, which starts the server and passes
// RUNNEL_BOOTSTRAP (Kafka) and RUNNEL_REGISTRY (the registry's URL):
//
//   RUNNEL_BOOTSTRAP=127.0.0.1:9092 RUNNEL_REGISTRY=http://127.0.0.1:8081 \
//     node --test registry.test.js
'use strict'

const { describe, test, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')

const { Kafka, logLevel, Partitioners } = require('kafkajs')
const { SchemaRegistry, SchemaType, COMPATIBILITY } = require('@kafkajs/confluent-schema-registry')

const BOOTSTRAP = process.env.RUNNEL_BOOTSTRAP
const REGISTRY = process.env.RUNNEL_REGISTRY
if (!BOOTSTRAP || !REGISTRY) {
  throw new Error('set RUNNEL_BOOTSTRAP=host:port and RUNNEL_REGISTRY=http://host:port')
}

const suffix = crypto.randomBytes(4).toString('hex')
const TOPIC = `js-registry-${suffix}`

const kafka = new Kafka({ clientId: 'runnel-compat-registry', brokers: [BOOTSTRAP], logLevel: logLevel.WARN })
const registry = new SchemaRegistry({ host: REGISTRY })

const paymentV1 = {
  type: 'record',
  name: 'Payment',
  namespace: 'compat.js',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'amount', type: 'double' },
  ],
}
const paymentV2 = {
  ...paymentV1,
  fields: [...paymentV1.fields, { name: 'currency', type: 'string', default: 'EUR' }],
}
const paymentBad = {
  ...paymentV1,
  fields: [...paymentV1.fields, { name: 'payer', type: 'string' }],
}

async function registryGet (path) {
  const r = await fetch(`${REGISTRY}${path}`)
  return { status: r.status, body: await r.json() }
}

describe('@kafkajs/confluent-schema-registry on Runnel', () => {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  after(async () => { await producer.disconnect() })

  test('Avro records round-trip through the broker and the registry', async () => {
    const subject = `${TOPIC}-value`
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(paymentV1) },
      { subject }
    )
    assert.equal(await registry.getLatestSchemaId(subject), id)
    assert.equal(await registry.getRegistryId(subject, 1), id)
    assert.equal(await registry.getRegistryIdBySchema(subject, { type: SchemaType.AVRO, schema: JSON.stringify(paymentV1) }), id)

    const payments = Array.from({ length: 20 }, (_, i) => ({ id: `p${i}`, amount: i * 1.5 }))
    await producer.connect()
    const messages = []
    for (const p of payments) {
      messages.push({ key: p.id, value: await registry.encode(id, p) })
    }
    await producer.send({ topic: TOPIC, messages })

    const consumer = kafka.consumer({ groupId: `js-registry-${suffix}` })
    await consumer.connect()
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true })
    const values = []
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`got ${values.length} of ${payments.length}`)), 30000)
      consumer.run({
        eachMessage: async ({ message }) => {
          values.push(message.value)
          if (values.length === payments.length) {
            clearTimeout(timer)
            resolve()
          }
        },
      }).catch(reject)
    })
    await consumer.disconnect()
    for (const v of values) {
      assert.equal(v.readUInt8(0), 0, 'magic byte')
      assert.equal(v.readUInt32BE(1), id, 'schema id')
    }
    // A fresh client, no cache: the ids resolve in Runnel's registry.
    const fresh = new SchemaRegistry({ host: REGISTRY })
    const decoded = await Promise.all(values.map(v => fresh.decode(v)))
    // (avsc decodes into instances of a Payment class: compare their fields)
    assert.deepEqual(decoded.map(d => ({ ...d })), payments)

    // v2 adds a field with a default: compatible, a new id; old records
    // read with v2 as the reader schema get the default.
    const v2 = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(paymentV2) }, { subject })
    assert.notEqual(v2.id, id)
    const readerSchema = await fresh.getSchema(v2.id)
    const old = await fresh.decode(values[0], { [SchemaType.AVRO]: { readerSchema } })
    assert.deepEqual({ ...old }, { ...payments[0], currency: 'EUR' })

    // A field without a default is refused with the registry's 409.
    await assert.rejects(
      registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(paymentBad) }, { subject }),
      err => err.status === 409 && /incompatible/i.test(err.message)
    )
    assert.deepEqual((await registryGet(`/subjects/${subject}/versions`)).body, [1, 2])
  })

  test('a first registration sets the compatibility asked for', async () => {
    const subject = `${TOPIC}-full`
    await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(paymentV1) },
      { subject, compatibility: COMPATIBILITY.FULL, updateConfig: true }
    )
    assert.deepEqual(await registryGet(`/config/${subject}`), { status: 200, body: { compatibilityLevel: 'FULL' } })
    // Registering again under FULL checks the config it now has.
    const again = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(paymentV1) },
      { subject, compatibility: COMPATIBILITY.FULL }
    )
    assert.equal(again.id, await registry.getLatestSchemaId(subject))
  })

  test('unknown subjects and ids are 404s with the registry codes', async () => {
    const fresh = new SchemaRegistry({ host: REGISTRY })
    await assert.rejects(fresh.getLatestSchemaId(`${TOPIC}-missing`), err => err.status === 404)
    await assert.rejects(fresh.getSchema(987654), err => err.status === 404)
    assert.equal((await registryGet(`/subjects/${TOPIC}-missing/versions`)).body.error_code, 40401)
  })
})
