# SLOs and their burn-rate alerts: the same objectives, windows and burn rates as the local
# stack (deploy/local/prometheus/rules/slo.yml, the SRE workbook's multi-window, multi-burn-rate
# alerts over a 30-day budget). Measured on Cloud Run's own request metrics, at its front end:
# they count what a client saw, including the 503s and 504s the shop never answered, and do not
# depend on the sidecar. Cloud Run's startup and liveness probes do not pass through the front
# end, so, as locally, they are not part of the SLOs.
locals {
  slo_requests = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${var.service_name}\"",
  ])

  slos = {
    availability = {
      goal    = 0.999
      display = "99.9% of requests answered without a 5xx"
    }
    latency = {
      goal    = 0.95
      display = "95% of requests answered within 200 ms"
    }
  }

  # name => (long window, short window, burn rate, severity): slo.yml's four alerts per SLO.
  burn_windows = {
    fast    = { long = "3600s", short = "300s", rate = 14.4, severity = "page" }
    medium  = { long = "21600s", short = "1800s", rate = 6, severity = "page" }
    slow    = { long = "86400s", short = "7200s", rate = 3, severity = "ticket" }
    slowest = { long = "259200s", short = "21600s", rate = 1, severity = "ticket" }
  }

  burn_alerts = {
    for pair in setproduct(keys(local.slos), keys(local.burn_windows)) :
    "${pair[0]}-${pair[1]}" => merge(local.burn_windows[pair[1]], { slo = pair[0] })
  }

  page_channels   = [google_monitoring_notification_channel.pagerduty.id]
  ticket_channels = var.ticket_email != "" ? [google_monitoring_notification_channel.email[0].id] : local.page_channels
}

resource "google_monitoring_notification_channel" "pagerduty" {
  display_name = "PagerDuty: ${var.service_name}"
  type         = "pagerduty"
  sensitive_labels {
    service_key = var.pagerduty_service_key
  }
  depends_on = [google_project_service.apis]
}

resource "google_monitoring_notification_channel" "email" {
  count = var.ticket_email != "" ? 1 : 0

  display_name = "Tickets: ${var.service_name}"
  type         = "email"
  labels = {
    email_address = var.ticket_email
  }
}

resource "google_monitoring_custom_service" "shop" {
  service_id   = var.service_name
  display_name = "${var.service_name} (Cloud Run)"
  depends_on   = [google_project_service.apis]
}

resource "google_monitoring_slo" "availability" {
  service             = google_monitoring_custom_service.shop.service_id
  slo_id              = "availability"
  display_name        = local.slos.availability.display
  goal                = local.slos.availability.goal
  rolling_period_days = 30

  request_based_sli {
    good_total_ratio {
      total_service_filter = join(" AND ", [local.slo_requests, "metric.type=\"run.googleapis.com/request_count\""])
      bad_service_filter = join(" AND ", [
        local.slo_requests,
        "metric.type=\"run.googleapis.com/request_count\"",
        "metric.labels.response_code_class=\"5xx\"",
      ])
    }
  }
}

resource "google_monitoring_slo" "latency" {
  service             = google_monitoring_custom_service.shop.service_id
  slo_id              = "latency"
  display_name        = local.slos.latency.display
  goal                = local.slos.latency.goal
  rolling_period_days = 30

  request_based_sli {
    distribution_cut {
      distribution_filter = join(" AND ", [local.slo_requests, "metric.type=\"run.googleapis.com/request_latencies\""])
      range {
        # request_latencies is in milliseconds: good = at most 200 ms.
        max = 200
      }
    }
  }
}

locals {
  slo_names = {
    availability = google_monitoring_slo.availability.name
    latency      = google_monitoring_slo.latency.name
  }
}

# Both windows must burn faster than the rate: the long one says the budget is really going,
# the short one that it still is (the alert resets soon after the problem ends).
resource "google_monitoring_alert_policy" "burn_rate" {
  for_each = local.burn_alerts

  display_name = "${var.service_name} ${each.value.slo} burn rate ${each.key} (${each.value.rate}x over ${each.value.long} and ${each.value.short})"
  combiner     = "AND"
  severity     = each.value.severity == "page" ? "CRITICAL" : "WARNING"

  conditions {
    display_name = "burn rate > ${each.value.rate} over ${each.value.long}"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${local.slo_names[each.value.slo]}\", \"${each.value.long}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.rate
      duration        = "0s"
    }
  }
  conditions {
    display_name = "burn rate > ${each.value.rate} over ${each.value.short}"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${local.slo_names[each.value.slo]}\", \"${each.value.short}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.rate
      duration        = "0s"
    }
  }

  notification_channels = each.value.severity == "page" ? local.page_channels : local.ticket_channels
  user_labels = {
    severity = each.value.severity
    slo      = each.value.slo
  }

  documentation {
    mime_type = "text/markdown"
    content   = "SLO: ${local.slos[each.value.slo].display} (30 days). The error budget burns at over ${each.value.rate}x over both ${each.value.long} and ${each.value.short}. Open the SLO in Monitoring > SLOs, then Cloud Trace (errors and slow traces are always kept) and the service's logs (docs/deploy-gcp.md)."
  }
}
