// custodian-node: runs one node (see runtime/node/node.hpp and configs/).
#include "runtime/node/node.hpp"

int main(int argc, char** argv) { return custodian::run_node(argc, argv); }
