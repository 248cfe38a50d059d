# Cloudflare Access in front of the tunnel hostname: only a service token gets through (reliability.md §7).
# Written for the Cloudflare Terraform provider 4.x (>= 4.45, `cloudflare_zero_trust_access_*` names); v5 renamed
# attributes. Not applied from this repository: check it against your provider version before use.
variable "account_id" { type = string }
variable "agent_hostname" { default = "gpu-agent.example.com" }

resource "cloudflare_zero_trust_access_service_token" "router" {
  account_id = var.account_id
  name       = "hvr-router"
  duration   = "8760h" # rotate yearly; the router must then send the new CF-Access-Client-Id/-Secret
}

resource "cloudflare_zero_trust_access_application" "agent" {
  account_id       = var.account_id
  name             = "hvr GPU agent"
  domain           = var.agent_hostname
  type             = "self_hosted"
  session_duration = "24h"
}

# Machine clients: a "Service Auth" (non_identity) policy that admits the router's token and nobody else.
resource "cloudflare_zero_trust_access_policy" "router_only" {
  account_id     = var.account_id
  application_id = cloudflare_zero_trust_access_application.agent.id
  name           = "hvr router service token"
  precedence     = 1
  decision       = "non_identity"
  include {
    service_token = [cloudflare_zero_trust_access_service_token.router.id]
  }
}

output "router_client_id" { value = cloudflare_zero_trust_access_service_token.router.client_id }
output "router_client_secret" {
  value     = cloudflare_zero_trust_access_service_token.router.client_secret
  sensitive = true
}
