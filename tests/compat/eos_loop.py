"""A consume-transform-produce loop with exactly-once semantics, run as its
own process by test_exactly_once.py (which SIGKILLs and restarts it).

Reads `input` in consumer group `group` (read_committed), writes
"<value>-processed" to `output` keyed like the input, and commits the input
offsets inside the same transaction. Usage: eos_loop.py BOOTSTRAP INPUT OUTPUT GROUP TXN_ID
"""
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer


def main() -> None:
    bootstrap, input_topic, output_topic, group, txn_id = sys.argv[1:6]
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.instance.id": "eos-worker",  # static: a restart needs no rebalance wait
        "session.timeout.ms": 6000,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 10000,
        "linger.ms": 1,
    })
    producer.init_transactions(20)
    consumer.subscribe([input_topic])
    print("ready", flush=True)
    while True:
        msgs = consumer.consume(num_messages=20, timeout=0.5)
        msgs = [m for m in msgs if m.error() is None]
        if not msgs:
            continue
        producer.begin_transaction()
        for m in msgs:
            producer.produce(output_topic, key=m.key(), value=m.value() + b"-processed")
        producer.flush(20)
        # Tell the test a transaction with records in the log is open, and
        # hold it open a moment: a SIGKILL sent on this line lands inside it.
        print("open", flush=True)
        time.sleep(0.02)
        try:
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()),
                consumer.consumer_group_metadata(), 20)
            producer.commit_transaction(20)
        except KafkaException as e:
            err = e.args[0]
            if err.txn_requires_abort():
                producer.abort_transaction(20)
                # Rewind to the last committed offsets and try again.
                committed = consumer.committed(consumer.assignment(), timeout=20)
                for tp in committed:
                    if tp.offset >= 0:
                        consumer.seek(tp)
                continue
            raise


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
    except KafkaException as e:
        if e.args and isinstance(e.args[0], KafkaError):
            print(f"fatal: {e.args[0]}", file=sys.stderr, flush=True)
        raise
