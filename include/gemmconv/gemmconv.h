// Umbrella header of the gemmconv engine.
#pragma once

#include "gemmconv/device.h"
#include "gemmconv/engine.h"
#include "gemmconv/gemm.h"
#include "gemmconv/problem.h"
#include "gemmconv/replay.h"
#include "gemmconv/solver.h"
#include "gemmconv/types.h"
