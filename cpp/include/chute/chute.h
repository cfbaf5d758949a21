// Everything of chute's public C++ API.
#pragma once

#include "chute/dataset.h"
#include "chute/export.h"
#include "chute/format.h"
#include "chute/order.h"
#include "chute/reader.h"
#include "chute/source.h"
#include "chute/status.h"
#include "chute/storage.h"
#include "chute/tokens.h"
#include "chute/writer.h"
