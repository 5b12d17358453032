#pragma once
/// The journal of the MongoDB store: a commit as one document, written before
/// it is applied (roll-forward after a crash), and outbox entries as both the
/// outbox collection and the journal hold them.

#include "runtime/store/mongo/bson.hpp"
#include "runtime/store/mongo_store.hpp"

namespace custodian::store::mongo {

void put_outbox(bson_t* x, const outbox_row& o, int64_t id);
outbox_row get_outbox(const bson_t* d);

/// A journal entry <-> its document (field names in journal.cpp).
void encode(bson_t* d, const mongo_store::entry& e);
mongo_store::entry decode(const bson_t* d);

}  // namespace custodian::store::mongo
