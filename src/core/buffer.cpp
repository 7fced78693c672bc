// BlockPool: a bounded free list of read blocks for one worker.
#include "core/buffer.hpp"

#include <new>

namespace sluice {

BlockPool::~BlockPool() {
  while (free_) {
    Block* next = free_->next_free;
    ::operator delete(free_);
    free_ = next;
  }
}

Block* BlockPool::get() {
  Block* b = free_;
  if (b) {
    free_ = b->next_free;
    --free_count_;
  } else {
    b = static_cast<Block*>(::operator new(sizeof(Block)));
    b->pool = this;
  }
  b->next_free = nullptr;
  b->refs = 1;
  ++in_use_;
  return b;
}

void BlockPool::recycle(Block* b) noexcept {
  --in_use_;
  if (free_count_ >= max_free_) {
    ::operator delete(b);
    return;
  }
  b->next_free = free_;
  free_ = b;
  ++free_count_;
}

}  // namespace sluice
